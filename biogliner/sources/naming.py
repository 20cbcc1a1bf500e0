"""Names of input files: partition names and NLM replay order."""

from __future__ import annotations

import re

_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_XML_SUFFIXES = (".xml", ".nxml")
_PUBMED_NAME = re.compile(r"^(?:pubmed|medline)(\d{2})n(\d{4,})$")


def basename(url: str) -> str:
    """Last path segment of a local path or URL (query strings dropped)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def input_name(url: str) -> str:
    """Stable partition name of an input file.

    ``.../pubmed26n0001.xml.gz`` -> ``pubmed26n0001``; ``.../PMC123456.1/PMC123456.1.xml`` ->
    ``PMC123456.1``; ``.../pone.0046493.nxml`` -> ``pone.0046493``. Only compression and XML
    suffixes are removed, so dots inside the stem (PMC versions, DOIs) survive.
    """
    name = basename(url)
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix in _XML_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name


def pubmed_file_order(name: str) -> tuple[int, int]:
    """Sort key ``(year, number)`` for NLM's replay order of PubMed files.

    Accepts a URL, a file name or an :func:`input_name` (``pubmed26n0001``, ``medline16n0902``).
    Baseline and update files of one production year share one number sequence (updates continue
    after the last baseline number), so sorting by this key gives the order NLM prescribes:
    baseline first, then updates ascending. Raises ``ValueError`` for other names.
    """
    stem = input_name(name)
    m = _PUBMED_NAME.match(stem)
    if not m:
        raise ValueError(f"not a PubMed file name (pubmedYYnNNNN / medlineYYnNNNN): {name!r}")
    return 2000 + int(m.group(1)), int(m.group(2))
