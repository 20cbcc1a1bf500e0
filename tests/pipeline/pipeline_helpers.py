"""Helpers of the pipeline tests (imported by name: tests/pipeline is on sys.path)."""

from __future__ import annotations

import gzip
from pathlib import Path

from biogliner.sources import sample_corpus_path

# A threshold at which the tiny random checkpoint finds a few entities per passage (random scores
# sit around 0.5, p99 ≈ 0.515): entity tables are non-empty, so comparisons mean something.
TINY_THRESHOLD = 0.515


def corrupt_shard_bytes() -> bytes:
    """A PubMed shard cut in the middle of its gzip stream (after some good records)."""
    from biogliner.testing.synthetic import make_pubmed_shard

    data = make_pubmed_shard(400)
    return data[: int(len(data) * 0.6)]


def upload_dir(local: Path, url: str) -> None:
    """Copy a local directory tree to ``url`` (s3://bucket/prefix) through fsspec."""
    from biogliner import io as bio

    fs, root = bio.filesystem(url)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{root}/{p.relative_to(local).as_posix()}", p.read_bytes())


def read_tables(root: str, storage_options=None, *, drop=("run_id",)) -> dict:
    """Every committed table under ``root`` as sorted Python rows (run ids dropped: they differ
    between runs by design), plus the manifest entries without run-specific fields."""
    import pyarrow.parquet as pq

    from biogliner.schema import TABLES
    from biogliner.store.manifest import Store

    store = Store(root, storage_options)
    store.fs.invalidate_cache()  # s3fs instances are shared: drop listings cached before other runs wrote
    entries = store.entries()
    out = {}
    for table in TABLES:
        rows = []
        for url in store.committed_files(table, entries):
            fs_path = url if "://" not in url else url.split("://", 1)[1]
            with store.fs.open(fs_path, "rb") as f:
                t = pq.read_table(f)
            assert t.schema.metadata[b"biogliner.schema_version"] == b"1"
            part = url.split(f"/{table}/", 1)[1].rsplit("/", 1)[0]  # source=../input=..
            for row in t.to_pylist():
                for k in drop:
                    row.pop(k, None)
                rows.append((part, tuple(sorted(row.items(), key=lambda kv: kv[0]))))
        out[table] = sorted(rows, key=repr)
    out["manifest"] = sorted(
        (e.source, e.input, e.status, e.size, e.md5, e.etag, tuple(sorted(e.label_sets)), repr(sorted((e.parse.counts or {}).items())))
        for e in entries
    )
    return out
