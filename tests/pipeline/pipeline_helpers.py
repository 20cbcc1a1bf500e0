"""Helpers of the pipeline tests (imported by name: tests/pipeline is on sys.path)."""

from __future__ import annotations

from pathlib import Path

# A threshold at which the tiny random checkpoint finds a few entities per passage (random scores
# sit around 0.5, p99 ≈ 0.515): entity tables are non-empty, so comparisons mean something.
TINY_THRESHOLD = 0.515


def corrupt_shard_bytes() -> bytes:
    """A PubMed shard cut in the middle of its gzip stream (after some good records)."""
    from biogliner.testing.synthetic import make_pubmed_shard

    data = make_pubmed_shard(400)
    return data[: int(len(data) * 0.6)]


# dummy credentials of the test S3 server, passed explicitly so that Ray workers started before the
# S3 fixture set the environment still reach it (the endpoint comes from AWS_ENDPOINT_URL)
CREDS = {"key": "testing", "secret": "testing"}


def new_bucket(s3_server: str, name: str) -> str:
    """Create ``name`` (made unique per process) on the test server; returns its ``s3://`` URL."""
    import os

    import boto3
    import s3fs

    name = f"{name}-{os.getpid()}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    s3fs.S3FileSystem.clear_instance_cache()
    return f"s3://{name}"


def upload_dir(local: Path, url: str) -> None:
    """Copy a local directory tree to ``url`` (s3://bucket/prefix) through fsspec."""
    from biogliner import io as bio

    fs, root = bio.filesystem(url)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{root}/{p.relative_to(local).as_posix()}", p.read_bytes())


def read_tables(root: str, storage_options=None, *, drop=("run_id",)) -> dict:
    """Every table under ``root`` as its readers see it (the rows of committed units: the commits
    table's current parse runs and entity commits), as sorted Python rows (run ids dropped: they
    differ between runs by design), plus the commits rows without run-specific fields."""
    from deltalake import DeltaTable

    from biogliner.schema import TABLES
    from biogliner.store.delta import delta_storage_options
    from biogliner.store.output import Output

    out_ = Output(root, storage_options)
    state = out_.state()
    runs = set(state.committed_runs())
    ents = set(state.current_label_sets())
    opts = delta_storage_options(root, storage_options) or None
    out = {}
    for table in TABLES:
        rows = []
        try:
            t = DeltaTable(f"{root.rstrip('/')}/{table}", storage_options=opts).to_pyarrow_table()
        except Exception as exc:  # noqa: BLE001 (a table nobody wrote)
            if "no log files" in str(exc).lower() or "not a delta table" in str(exc).lower() or "TableNotFound" in type(exc).__name__:
                out[table] = []
                continue
            raise
        for row in t.to_pylist():
            if table == "entities":
                if (row["source"], row["input"], row["label_set"], row["run_id"]) not in ents:
                    continue
            elif (row["source"], row["input"], row["run_id"]) not in runs:
                continue
            part = f"source={row.pop('source')}/input={row.pop('input')}"
            for k in drop:
                row.pop(k, None)
            rows.append((part, tuple(sorted(row.items(), key=lambda kv: kv[0]))))
        out[table] = sorted(rows, key=repr)
    out["commits"] = sorted(
        (r.kind, r.source, r.input, r.status, r.label_set, r.version,
         tuple(sorted((m["input"], m.get("size"), m.get("md5"), m.get("etag"), m.get("status")) for m in r.inputs)),
         repr(sorted((k, v) for k, v in (r.counts or {}).items() if k not in ("timings",))))
        for r in _current_records(state)
    )
    return out


def _current_records(state):
    return list(state.parse.values()) + [r for sets in state.label_sets.values() for r in sets.values()]
