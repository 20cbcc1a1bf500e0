"""The commit protocol: only what a manifest entry names is visible; entries replace atomically."""

from __future__ import annotations

import pyarrow as pa
import pytest

from biogliner.schema import TABLES
from biogliner.store import layout
from biogliner.store.manifest import LabelSetCommit, ManifestEntry, ParseCommit, Store, StoreError


def _docs(ids: list[str], run_id: str) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "doc_id": ids,
            "pmid": [int(i.split(":")[1]) for i in ids],
            "version": [1] * n,
            "pmcid": [None] * n,
            "doi": [None] * n,
            "status": ["MEDLINE"] * n,
            "language": ["eng"] * n,
            "year": [2020] * n,
            "journal": ["J"] * n,
            "license": [None] * n,
            "source_file": ["pubmed26n0001.xml.gz"] * n,
            "position": list(range(n)),
            "n_passages": [1] * n,
            "run_id": [run_id] * n,
        }
    )


def _entry(store: Store, input_name: str, run_id: str, ids: list[str]) -> ManifestEntry:
    rel = store.write_table("documents", "pubmed", input_name, run_id, _docs(ids, run_id))
    return ManifestEntry(
        input=input_name,
        source="pubmed",
        url=f"/in/{input_name}.xml.gz",
        status="committed",
        run_id=run_id,
        size=10,
        md5="ab" * 16,
        parse=ParseCommit(run_id=run_id, files={"documents": [rel]}, counts={"documents": len(ids)}),
    )


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(str(tmp_path / "out"))
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"{bucket}/out")


def test_uncommitted_files_are_invisible_and_collected(store):
    committed = _entry(store, "pubmed26n0001", "run-a", ["pubmed:1", "pubmed:2"])
    store.commit(committed)
    # A crashed run wrote a file for another input and never committed it.
    orphan = store.write_table("documents", "pubmed", "pubmed26n0002", "run-b", _docs(["pubmed:3"], "run-b"))

    assert store.committed_relpaths("documents") == committed.parse.files["documents"]
    assert store.committed_files("entities") == []
    assert store.garbage() == [orphan]
    assert store.gc() == 1
    assert store.garbage() == []
    assert store.committed_relpaths("documents") == committed.parse.files["documents"]


def test_entry_roundtrip_and_replace(store):
    entry = _entry(store, "pubmed26n0001", "run-a", ["pubmed:1"])
    entry.label_sets["biomed@1"] = LabelSetCommit(run_id="run-a", model="fp", files=["entities/x.parquet"])
    store.commit(entry)
    again = store.read_entry("pubmed", "pubmed26n0001")
    assert again == entry
    replaced = _entry(store, "pubmed26n0001", "run-b", ["pubmed:1", "pubmed:9"])
    store.commit(replaced)
    assert store.read_entry("pubmed", "pubmed26n0001").run_id == "run-b"
    assert [e.input for e in store.entries()] == ["pubmed26n0001"]
    assert store.committed_relpaths("entities") == []
    assert store.read_entry("pubmed", "nothing") is None


def test_write_table_enforces_the_schema(tmp_path):
    store = Store(str(tmp_path))
    bad = _docs(["pubmed:1"], "r").drop_columns(["year"])
    with pytest.raises(StoreError, match="missing columns \\['year'\\]"):
        store.write_table("documents", "pubmed", "x", "r", bad)
    rel = store.write_table("documents", "pubmed", "x", "r", _docs(["pubmed:1"], "r"))
    import pyarrow.parquet as pq

    written = pq.read_schema(store.path(rel))
    assert written.metadata[b"biogliner.schema_version"] == TABLES["documents"].metadata[b"biogliner.schema_version"]
    assert written.field("year").type == pa.int32()


def test_same_input_prefers_md5_then_etag_then_size():
    e = ManifestEntry(input="i", source="pubmed", url="u", status="committed", run_id="r", parse=ParseCommit("r"), size=5, etag='"e"', md5="m")
    assert e.same_input(5, '"e"', "m")
    assert not e.same_input(5, '"e"', "other")
    e.md5 = None
    assert not e.same_input(5, '"x"', None)
    e.etag = None
    assert e.same_input(5, None, None)


def test_corrupt_entry_names_the_file(tmp_path):
    store = Store(str(tmp_path))
    path = tmp_path / layout.manifest_relpath("pubmed", "bad")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StoreError, match="bad.json"):
        store.entries()


def test_entries_see_commits_made_by_another_client(s3_bucket):
    """A long-lived Store (e.g. a nightly driver) must not answer from a stale listing cache."""
    import s3fs

    reader = Store(f"{s3_bucket}/out")
    reader.commit(_entry(reader, "pubmed26n0001", "run-a", ["pubmed:1"]))
    assert [e.input for e in reader.entries()] == ["pubmed26n0001"]  # the listing is now cached
    writer = Store(f"{s3_bucket}/out")
    writer.fs = s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=reader.storage_options["endpoint_url"])
    writer.commit(_entry(writer, "pubmed26n0002", "run-b", ["pubmed:2"]))
    assert [e.input for e in reader.entries()] == ["pubmed26n0001", "pubmed26n0002"]
    assert reader.garbage() == []
