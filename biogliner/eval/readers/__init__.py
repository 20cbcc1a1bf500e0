"""Gold readers: every format to a :class:`~biogliner.eval.gold.GoldCorpus`, format autodetection.

``read_gold(ref)`` reads a local path or fsspec URL (``.gz`` decompressed) in the format named by
``fmt`` or detected from the extension, then the content; a ``.parquet`` file, or a directory laid out
as a hub Parquet conversion (``<config>/<split>/*.parquet``), is read with pyarrow; ``hub:NAME`` (or
an ``owner/name`` without a file extension that is not an existing path) reads a hub dataset (its
Parquet conversion, else ``datasets``).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re

from biogliner.eval.gold import GoldCorpus, GoldFormatError, Unit
from biogliner.eval.readers.bioc import read_bioc_json, read_bioc_xml
from biogliner.eval.readers.conll import read_conll
from biogliner.eval.readers.hub import corpus_from_records, read_hub_dataset
from biogliner.eval.readers.parquet import read_parquet_dir, read_parquet_file
from biogliner.eval.readers.pubtator import read_pubtator
from biogliner.eval.readers.spans import read_gliner, read_jsonl

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("bioc-xml", "bioc-json", "pubtator", "conll", "jsonl", "gliner", "parquet", "hub")

_EXT = {
    ".xml": "bioc-xml",
    ".bioc": "bioc-xml",
    ".pubtator": "pubtator",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
    ".iob2": "conll",
    ".bioes": "conll",
}
_PUBTATOR_LINE = re.compile(r"^[^|\t\n]+\|[ta]\|", re.M)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

__all__ = [
    "FORMATS",
    "corpus_from_records",
    "detect_format",
    "read_bioc_json",
    "read_bioc_xml",
    "read_conll",
    "read_gliner",
    "read_gold",
    "read_hub_dataset",
    "read_jsonl",
    "read_parquet_dir",
    "read_parquet_file",
    "read_pubtator",
]


def _json_kind(head: str, source: str) -> str:
    """``bioc-json``, ``gliner`` or ``jsonl`` from the start of a JSON/JSONL text."""
    s = head.lstrip()
    if s.startswith("{") and re.match(r'\{\s*"(source|date|key|infons|documents)"', s):
        return "bioc-json"
    first = s.split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        if "documents" in obj:
            return "bioc-json"
        if "tokenized_text" in obj:
            return "gliner"
        return "jsonl"
    if '"tokenized_text"' in s[:4096]:
        return "gliner"
    if '"passages"' in s[:4096]:
        return "bioc-json"
    if s.startswith("[") or s.startswith("{"):
        return "jsonl"
    raise GoldFormatError(f"{source}: cannot tell the JSON flavour; pass --format")


def detect_format(source: str, data: bytes) -> str:
    """The gold format of ``data`` (the file's bytes), by extension then content."""
    name = source[:-3] if source.endswith(".gz") else source
    ext = os.path.splitext(name)[1].lower()
    if ext in _EXT:
        return _EXT[ext]
    head = data[:65536].decode("utf-8", errors="replace")
    if ext in (".json", ".jsonl", ".ndjson"):
        return _json_kind(head, source)
    s = head.lstrip()
    if s.startswith("<"):
        return "bioc-xml"
    if s.startswith("{") or s.startswith("["):
        return _json_kind(head, source)
    if _PUBTATOR_LINE.search(head):
        return "pubtator"
    lines = [ln for ln in head.splitlines() if ln.strip()][:20]
    if lines and all(len(ln.split()) >= 2 for ln in lines):
        return "conll"
    raise GoldFormatError(f"{source}: cannot detect the gold format; pass --format (one of {', '.join(FORMATS)})")


def _read_bytes(ref: str, storage_options: dict | None) -> bytes:
    from biogliner import io as bio

    try:
        with bio.open_binary(ref, storage_options) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise GoldFormatError(f"{ref}: no such file") from None
    except IsADirectoryError:
        raise GoldFormatError(f"{ref}: is a directory; give a file") from None
    if ref.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise GoldFormatError(f"{ref}: bad gzip data: {exc}") from None
    return data


def _exists(ref: str, storage_options: dict | None) -> bool:
    from biogliner import io as bio

    try:
        fs, path = bio.filesystem(ref, storage_options)
        return fs.exists(path)
    except (OSError, ValueError):
        return False


def _is_dir(ref: str, storage_options: dict | None) -> bool:
    from biogliner import io as bio

    try:
        fs, path = bio.filesystem(ref, storage_options)
        return bool(fs.isdir(path))
    except (OSError, ValueError):
        return False


def read_gold(
    ref: str,
    fmt: str | None = None,
    *,
    unit: Unit = "passage",
    dataset_config: str | None = None,
    split: str = "test",
    storage_options: dict | None = None,
) -> GoldCorpus:
    """Read gold annotations from a file/URL or a hub dataset (see the module docstring)."""
    if fmt is not None and fmt not in FORMATS:
        raise GoldFormatError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    looks_like_hub = fmt is None and _HUB_NAME.match(ref) and "." not in ref.rsplit("/", 1)[-1]
    if fmt == "hub" or ref.startswith("hub:") or (looks_like_hub and not _exists(ref, storage_options)):
        name = ref[4:] if ref.startswith("hub:") else ref
        return read_hub_dataset(name, config=dataset_config, split=split, unit=unit)
    if fmt in (None, "parquet") and _is_dir(ref, storage_options):  # laid out as a hub Parquet conversion
        return read_parquet_dir(ref, config=dataset_config, split=split, unit=unit, storage_options=storage_options)
    if fmt == "parquet" or (fmt is None and ref.lower().endswith(".parquet")):
        return read_parquet_file(ref, unit=unit, storage_options=storage_options)
    data = _read_bytes(ref, storage_options)
    fmt = fmt or detect_format(ref, data)
    logger.info("reading %s as %s", ref, fmt)
    if fmt == "bioc-xml":
        return read_bioc_xml(data, ref, unit)
    if fmt == "bioc-json":
        return read_bioc_json(data, ref, unit)
    if fmt == "pubtator":
        return read_pubtator(data, ref, unit)
    if fmt == "conll":
        return read_conll(data, ref)
    if fmt == "jsonl":
        return read_jsonl(data, ref)
    return read_gliner(data, ref)
