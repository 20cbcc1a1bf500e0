"""Commit records: one JSON manifest entry per input file, written last, replaced atomically.

An input file's outputs become visible only when its entry names them. Readers (views, SQL,
tests) ask :meth:`Store.committed_files` and never list table folders, so files left by a crashed
run are invisible until :meth:`Store.gc` removes them.
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from biogliner import io
from biogliner.schema import SCHEMA_VERSION, TABLES
from biogliner.store import layout

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


class StoreError(RuntimeError):
    """A problem with the output store: an unreadable manifest, a table that breaks its schema."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ParseCommit:
    """The parse tables of one input (documents, passages, deletions, errors) from one run."""

    run_id: str
    files: dict[str, list[str]] = field(default_factory=dict)  # table -> relpaths
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class LabelSetCommit:
    """The entities of one input under one label set, from one run."""

    run_id: str
    model: str  # checkpoint fingerprint
    content_hash: str | None = None  # LabelSet.content_hash() (None: written before it was recorded)
    files: list[str] = field(default_factory=list)  # relpaths
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # what besides model, label set and input changes scores: batch size, precision, device...
    # (biogliner/pipeline/batching.py); empty: written before it was recorded
    scoring: dict[str, Any] = field(default_factory=dict)
    committed_at: str = field(default_factory=utc_now)


@dataclass
class ManifestEntry:
    input: str
    source: str
    url: str
    status: Literal["committed", "failed"]
    run_id: str
    parse: ParseCommit
    size: int | None = None
    etag: str | None = None
    md5: str | None = None
    error: str | None = None
    label_sets: dict[str, LabelSetCommit] = field(default_factory=dict)
    # label-set commits replaced by ``--reannotate`` (another model or label-set content), oldest
    # first: their files stay visible in the ``entities`` history, never in ``current_entities``
    superseded: dict[str, list[LabelSetCommit]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    committed_at: str = field(default_factory=utc_now)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "<manifest>") -> "ManifestEntry":
        try:
            raw = json.loads(text)
            raw["parse"] = ParseCommit(**raw["parse"])
            raw["label_sets"] = {k: LabelSetCommit(**v) for k, v in raw.get("label_sets", {}).items()}
            raw["superseded"] = {k: [LabelSetCommit(**c) for c in v] for k, v in raw.get("superseded", {}).items()}
            return cls(**raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{where}: unreadable manifest entry ({exc})") from exc

    def same_input(self, size: int | None, etag: str | None, md5: str | None) -> bool:
        """Whether this entry was made from the same bytes (md5, else ETag, else size)."""
        if md5 and self.md5:
            return md5 == self.md5
        if etag and self.etag:
            return etag == self.etag
        return size is not None and size == self.size

    def relpaths(self, table: str) -> list[str]:
        if table == layout.ENTITY_TABLE:  # current label-set commits, then the superseded ones
            old = [p for commits in self.superseded.values() for ls in commits for p in ls.files]
            return [p for ls in self.label_sets.values() for p in ls.files] + old
        return list(self.parse.files.get(table, []))


class Store:
    """An output root: where tables are written, and the manifest that makes them visible."""

    def __init__(self, root: str, storage_options: io.StorageOptions | None = None):
        self.root_url = root.rstrip("/")
        self.storage_options = io.resolve_storage_options(root, storage_options)
        self.fs, self.root = io.filesystem(self.root_url, storage_options)
        self.root = self.root.rstrip("/")
        self.local = io.protocol_of(root) == "file"

    # -- paths ------------------------------------------------------------------------------
    def path(self, relpath: str) -> str:
        """Path within ``self.fs``."""
        return f"{self.root}/{relpath}"

    def url(self, relpath: str) -> str:
        """Full URL (or local path) of ``relpath``."""
        return io.join(self.root_url, relpath)

    def table_url(self, table: str, source: str, input_name: str, stem: str) -> str:
        return self.url(layout.table_relpath(table, source, input_name, stem))

    # -- tables -----------------------------------------------------------------------------
    def write_table(self, table: str, source: str, input_name: str, stem: str, data: pa.Table) -> str:
        """Write one Parquet file (zstd) of ``table`` for an input; returns its relpath.

        The data must carry exactly the table's columns (partition columns excluded: the folders
        carry them); it is cast to the explicit schema, never inferred.
        """
        schema = TABLES[table]
        if set(data.column_names) != set(schema.names):
            missing = sorted(set(schema.names) - set(data.column_names))
            extra = sorted(set(data.column_names) - set(schema.names))
            raise StoreError(f"table {table!r} for {source}/{input_name}: missing columns {missing}, unexpected {extra}")
        data = data.select(schema.names).cast(schema)
        relpath = layout.table_relpath(table, source, input_name, stem)
        path = self.path(relpath)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as f:
            pq.write_table(data, f, compression="zstd")
        return relpath

    # -- manifest ---------------------------------------------------------------------------
    def read_entry(self, source: str, input_name: str) -> ManifestEntry | None:
        path = self.path(layout.manifest_relpath(source, input_name))
        try:
            text = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return ManifestEntry.from_json(text, where=self.url(layout.manifest_relpath(source, input_name)))

    def entries(self) -> list[ManifestEntry]:
        """Every commit record under the root, sorted by (source, input)."""
        base = self.path(layout.MANIFEST_DIR)
        self.fs.invalidate_cache()  # object-store listings are cached per process: always list afresh
        try:
            paths = sorted(p for p in self.fs.find(base) if p.endswith(".json"))
        except FileNotFoundError:
            return []
        if not paths:
            return []
        if self.local:
            with ThreadPoolExecutor(8) as pool:
                texts = list(pool.map(self.fs.cat_file, paths))
        else:
            found = self.fs.cat(paths, on_error="raise")
            texts = [found[p] for p in paths]
        return sorted(
            (ManifestEntry.from_json(t, where=p) for p, t in zip(paths, texts)),
            key=lambda e: (e.source, e.input),
        )

    def commit(self, entry: ManifestEntry) -> None:
        """Write ``entry``: the single atomic step that makes an input's outputs visible."""
        relpath = layout.manifest_relpath(entry.source, entry.input)
        self._put_atomic(relpath, entry.to_json().encode())
        log.debug("committed %s/%s (%s)", entry.source, entry.input, entry.status)

    def _put_atomic(self, relpath: str, data: bytes) -> None:
        path = self.path(relpath)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if self.local:  # write aside, then rename over: readers see the old or the new entry
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        else:  # one PUT replaces an object atomically
            self.fs.pipe_file(path, data)

    def put_json(self, relpath: str, obj: Any) -> str:
        """Write a JSON document (run summaries...) atomically; returns its URL."""
        self._put_atomic(relpath, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())
        return self.url(relpath)

    # -- what readers see -------------------------------------------------------------------
    def committed_relpaths(self, table: str, entries: list[ManifestEntry] | None = None) -> list[str]:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        entries = self.entries() if entries is None else entries
        return [p for e in entries for p in e.relpaths(table)]

    def committed_files(self, table: str, entries: list[ManifestEntry] | None = None) -> list[str]:
        """URLs of the Parquet files visible for ``table`` (only what manifest entries name)."""
        return [self.url(p) for p in self.committed_relpaths(table, entries)]

    def garbage(self) -> list[str]:
        """Parquet files under the table folders that no manifest entry names (crashed runs)."""
        entries = self.entries()
        live = {p for t in TABLES for p in self.committed_relpaths(t, entries)}
        out = []
        for table in TABLES:
            base = self.path(table)
            self.fs.invalidate_cache()
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                continue
            for p in found:
                rel = p[len(self.root) + 1 :]
                if p.endswith(".parquet") and rel not in live:
                    out.append(rel)
        return sorted(out)

    def gc(self) -> int:
        """Delete unreferenced table files; returns how many. Do not run beside a live job."""
        garbage = self.garbage()
        for rel in garbage:
            self.fs.rm_file(self.path(rel))
        return len(garbage)


def versions() -> dict[str, str]:
    """Versions of what produced the outputs, for the manifest."""
    from importlib import metadata

    out = {"schema": SCHEMA_VERSION}
    for dist in ("biogliner", "ray", "torch", "transformers", "pyarrow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
