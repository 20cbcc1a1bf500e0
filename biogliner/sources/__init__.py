"""Lossless streaming readers for PubMed/MEDLINE and PMC (JATS) XML.

The one entrypoint is :func:`iter_events`: it opens any input URL (local, ``s3://``...),
verifies an ``.md5`` sidecar when present, decompresses gzip itself, detects the format by the
root element and streams :class:`~biogliner.schema.Document`, :class:`~biogliner.schema.Deletion`
and :class:`~biogliner.schema.Skip` events in file order. Problems raise a typed
:class:`SourceError` after every good event before them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from biogliner.schema import Deletion, Document, Skip
from biogliner.sources.errors import (
    ChecksumError,
    EmptyInputError,
    MalformedXMLError,
    SourceError,
    TruncatedInputError,
    UnknownFormatError,
    UnsafeXMLError,
)
from biogliner.sources.naming import input_name, pubmed_file_order
from biogliner.sources.pmc_filter import PmcFilter

__all__ = [
    "ChecksumError",
    "EmptyInputError",
    "MalformedXMLError",
    "PmcFilter",
    "SourceError",
    "TruncatedInputError",
    "UnknownFormatError",
    "UnsafeXMLError",
    "input_name",
    "is_input_file",
    "iter_events",
    "pubmed_file_order",
    "sample_corpus_path",
]

_SIDECAR_SUFFIXES = (".md5", ".json", ".txt", ".pdf", ".tar.gz", ".tgz", ".jpg", ".png", ".gif", ".tif", ".mp4")


def is_input_file(url: str) -> bool:
    """``False`` for the sidecars that sit next to inputs (``.md5``, PMC ``.json``/``.txt``/media)."""
    name = url.rsplit("/", 1)[-1].lower()
    return not name.startswith(".") and not name.endswith(_SIDECAR_SUFFIXES)


def iter_events(
    url: str,
    *,
    storage_options=None,
    verify_md5: bool = True,
    pmc_filter: PmcFilter | None = None,
) -> Iterator[Document | Deletion | Skip]:
    """Stream the events of one input file, in file order.

    PubMed (``PubmedArticleSet``, ``MedlineCitationSet``) and PMC (``pmc-articleset``,
    ``article``) are told apart by the root element. ``pmc_filter`` (default: :class:`PmcFilter`
    defaults) applies to PMC files with a metadata ``.json``. Raises a :class:`SourceError`
    subclass, naming the file and the last good record, after the good events were yielded.
    """
    from biogliner.sources.pmc import PMC_ROOTS, iter_pmc
    from biogliner.sources.pubmed import PUBMED_ROOTS, iter_pubmed
    from biogliner.sources.stream import open_source

    opened = open_source(url, storage_options=storage_options, verify_md5=verify_md5)
    try:
        if opened.root in PUBMED_ROOTS:
            yield from iter_pubmed(opened)
        elif opened.root in PMC_ROOTS:
            yield from iter_pmc(opened, storage_options=storage_options, pmc_filter=pmc_filter or PmcFilter())
        else:
            raise UnknownFormatError(
                opened.source_file,
                f"root element <{opened.root}> is neither PubMed (PubmedArticleSet, MedlineCitationSet) "
                "nor PMC (pmc-articleset, article)",
            )
    finally:
        opened.close()


def sample_corpus_path() -> Path:
    """The small hand-written corpus shipped with biogliner (default input of ``biogliner annotate``):
    ``pubmed/*.xml.gz`` (+ ``.md5``) and ``pmc/`` (new per-version layout and one legacy ``.nxml``)."""
    return Path(__file__).resolve().parent.parent / "data" / "sample"
