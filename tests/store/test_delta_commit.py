"""Delta tables (biogliner.store.delta): worker-written files committed exactly once per unit.

Local disk and moto S3 (127.0.0.1). No Ray: "workers" are threads or spawned processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("deltalake")

from deltalake import DeltaTable  # noqa: E402

from biogliner import io  # noqa: E402
from biogliner.schema import DOCUMENTS, ENTITIES, PASSAGES  # noqa: E402
from biogliner.store.delta import (  # noqa: E402
    COMMITS_TABLE,
    DATA_TABLES,
    DataFile,
    DeltaStore,
    DeltaStoreError,
    Unit,
    delta_storage_options,
    write_data_file,
)

LABELS = ("gene", "disease", "chemical", "species")


# -- data builders ---------------------------------------------------------------------------------
def unit_tables(unit: str, n_docs: int = 4, seed: int = 0) -> dict[str, pa.Table]:
    """Deterministic documents/passages/entities rows of one unit (partition columns excluded)."""
    docs, passages, ents = [], [], []
    for d in range(n_docs):
        doc_id = f"pubmed:{unit}-{d}"
        docs.append(
            dict(doc_id=doc_id, pmid=1000 * seed + d, version=1, pmcid=None, doi=None, status="MEDLINE", language="eng",
                 year=2000 + d % 20, journal="J", license=None, source_file=f"{unit}.xml.gz", position=d, n_passages=2, run_id="r1")
        )
        for p in range(2):
            passages.append(dict(doc_id=doc_id, version=1, position=d, passage_index=p, section="title" if p == 0 else "abstract",
                                 text=f"text {unit} {d} {p} " * 3, run_id="r1"))
            for e in range(3):
                ents.append(dict(doc_id=doc_id, version=1, position=d, passage_index=p, start=4 * e, end=4 * e + 3, text=f"e{e}",
                                 label=LABELS[(d + p + e + seed) % len(LABELS)], score=0.5 + 0.01 * e, label_set="bio@1", model="fp", run_id="r1"))
    return {
        "documents": pa.Table.from_pylist(docs, schema=DOCUMENTS),
        "passages": pa.Table.from_pylist(passages, schema=PASSAGES),
        "entities": pa.Table.from_pylist(ents, schema=ENTITIES),
    }


def write_unit(root: str, unit: str, opts=None, n_docs: int = 4, split_entities: int = 2, tables=("documents", "passages", "entities")) -> list[DataFile]:
    """What the workers do for one unit: write its files (entities split in several files), in threads."""
    data = unit_tables(unit, n_docs)
    pv = {"source": "pubmed", "input": unit}
    jobs = [(t, data[t]) for t in ("documents", "passages") if t in tables]
    ent = data["entities"]
    step = -(-ent.num_rows // split_entities)
    if "entities" in tables:
        jobs += [("entities", ent.slice(i, step)) for i in range(0, ent.num_rows, step)]
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda j: write_data_file(root, j[0], j[1], pv, opts), jobs))


def read_committed(store: DeltaStore, table: str, as_of=None, opts=None) -> pa.Table:
    """Read the committed files of ``table`` from ``file_uris`` (hive partitions from the paths)."""
    uris = store.file_uris(table, as_of)
    if not uris:
        return pa.table({})
    if io.protocol_of(store.root_url) == "file":
        import duckdb

        sql = f"SELECT * FROM read_parquet({uris!r}, hive_partitioning=true, hive_types_autocast=false)"
        return duckdb.connect().sql(sql).fetch_arrow_table()
    parts = []
    for uri in uris:
        fs, path = io.pyarrow_filesystem(uri, opts)
        t = pq.read_table(path, filesystem=fs)
        for seg in uri.split("/")[-3:-1] if table != COMMITS_TABLE else []:
            k, v = seg.split("=", 1)
            t = t.append_column(k, pa.array([v] * t.num_rows, pa.string()))
        parts.append(t)
    return pa.concat_tables(parts)


def rows(t: pa.Table, drop=()) -> list[tuple]:
    """Rows as sorted tuples (column order by name), for order-independent comparison."""
    names = sorted(c for c in t.column_names if c not in drop)
    d = t.select(names).to_pylist()
    return sorted(tuple((k, r[k]) for k in names) for r in d)


def expected_rows(units: list[str], table: str) -> list[tuple]:
    parts = []
    for u in units:
        t = unit_tables(u)[table]
        t = t.append_column("source", pa.array(["pubmed"] * t.num_rows)).append_column("input", pa.array([u] * t.num_rows))
        parts.append(t)
    return rows(pa.concat_tables(parts))


def versions(store: DeltaStore) -> dict[str, int | None]:
    return {t: store.version(t) for t in (*DATA_TABLES, COMMITS_TABLE)}


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3_bucket") + "/out"


# -- tests ------------------------------------------------------------------------------------------
def test_worker_files_committed_and_read_back(root):
    store = DeltaStore(root)
    units = ["pubmed26n0001", "pubmed26n0002"]
    for u in units:
        files = pickle.loads(pickle.dumps(write_unit(root, u)))  # what travels to the driver
        assert all(f.size > 0 for f in files)
        assert store.commit_unit(u, 1, files, {"model": "fp", "label_set": "bio@1", "counts": {"abstracts": 4}}) is True
        assert store.is_committed(u, 1) and not store.is_committed(u, 2)
    for table in ("documents", "passages", "entities"):
        got = read_committed(store, table)
        assert rows(got) == expected_rows(units, table), table
        # delta-rs's own reader agrees, and the log's stats count the rows right
        dt = DeltaTable(store.table_uri(table), storage_options=delta_storage_options(root) or None)
        assert dt.to_pyarrow_table().num_rows == got.num_rows
        adds = pa.table(dt.get_add_actions(flatten=True)).to_pydict()
        assert sum(adds["num_records"]) == got.num_rows
        assert store.protocol(table) == (1, 2)
    # partition columns are not stored inside the files
    first = store.file_uris("entities")[0]
    fs, path = io.pyarrow_filesystem(first)
    assert set(pq.read_schema(path, filesystem=fs).names) == set(ENTITIES.names)
    commits = read_committed(store, COMMITS_TABLE).to_pylist()
    assert sorted(c["unit_id"] for c in commits) == units
    assert all(c["rows_entities"] == 24 and c["rows_documents"] == 4 and c["n_files"] == 4 for c in commits)
    assert json.loads(commits[0]["counts"]) == {"abstracts": 4}
    assert store.protocol(COMMITS_TABLE) == (1, 2)
    assert "testing" not in repr(store)


def test_stats_from_the_writer(tmp_path):
    root = str(tmp_path / "out")
    t = unit_tables("u", n_docs=3)["entities"]
    f = write_data_file(root, "entities", t, {"source": "pubmed", "input": "u"})
    stats = json.loads(f.stats)
    assert stats["numRecords"] == t.num_rows == f.num_records
    assert stats["minValues"]["start"] == 0 and stats["maxValues"]["end"] == 11
    assert stats["nullCount"]["version"] == 0
    assert stats["minValues"]["label"] == min(t.column("label").to_pylist())
    assert f.size == os.path.getsize(os.path.join(root, "entities", f.path))
    assert f.path.startswith("source=pubmed/input=u/part-") and f.path.endswith(".parquet")
    with pytest.raises(ValueError, match="partition"):
        write_data_file(root, "entities", t, {"source": "pubmed", "input": "a/b"})
    with pytest.raises(ValueError, match="partition columns"):
        write_data_file(root, "entities", t.append_column("source", pa.array(["x"] * t.num_rows)), {"source": "pubmed", "input": "u"})


def test_rerun_of_committed_unit_adds_nothing(tmp_path):
    root = str(tmp_path / "out")
    store = DeltaStore(root)
    assert store.commit_unit("u1", 1, write_unit(root, "u1"), {}) is True
    before, uris = versions(store), {t: store.file_uris(t) for t in DATA_TABLES}
    # a rerun: the workers write new files, the driver finds the unit committed
    assert store.commit_unit("u1", 1, write_unit(root, "u1"), {}) is False
    assert DeltaStore(root).commit_unit("u1", 1, write_unit(root, "u1"), {}) is False  # a fresh driver too
    assert versions(store) == before
    assert {t: store.file_uris(t) for t in DATA_TABLES} == uris
    # a higher version of the unit is committed again (e.g. a re-annotation)
    assert store.commit_unit("u1", 2, write_unit(root, "u1"), {}) is True
    assert store.version("entities") == before["entities"] + 1


class Crash(Exception):
    pass


@pytest.mark.parametrize("point", ["after:documents", "after:passages", "after:entities", "before:commits"])
def test_crash_between_tables_then_rerun_equals_clean_run(tmp_path, point):
    clean_root, crash_root = str(tmp_path / "clean"), str(tmp_path / "crash")
    clean = DeltaStore(clean_root)
    for u in ("u1", "u2"):
        assert clean.commit_unit(u, 1, write_unit(clean_root, u), {"model": "fp"})

    crashed = DeltaStore(crash_root)
    assert crashed.commit_unit("u1", 1, write_unit(crash_root, "u1"), {"model": "fp"})

    def fault(p):
        if p == point:
            raise Crash(p)

    with pytest.raises(Crash):
        crashed.commit_unit("u2", 1, write_unit(crash_root, "u2"), {"model": "fp"}, fault=fault)
    assert not crashed.is_committed("u2", 1)
    # a new driver reruns the unit (the workers write the files again)
    rerun = DeltaStore(crash_root)
    assert rerun.commit_unit("u2", 1, write_unit(crash_root, "u2"), {"model": "fp"}) is True
    assert rerun.commit_unit("u2", 1, write_unit(crash_root, "u2"), {"model": "fp"}) is False
    for table in ("documents", "passages", "entities"):
        got = read_committed(rerun, table)
        assert rows(got) == rows(read_committed(clean, table)) == expected_rows(["u1", "u2"], table), table
    drop = ("committed_at", "timings")
    assert rows(read_committed(rerun, COMMITS_TABLE), drop) == rows(read_committed(clean, COMMITS_TABLE), drop)
    # each table got exactly one data commit per unit: same versions as the clean run
    assert versions(rerun) == versions(clean)


def test_batched_commit_after_a_crash(tmp_path):
    """commit_units: one Delta commit per table for several units, exactly once per unit."""
    root = str(tmp_path / "out")
    store = DeltaStore(root)
    assert store.commit_units([Unit("u0", 1, write_unit(root, "u0"), {})]) == {"u0": True}

    def crash_after_entities(p):
        if p == "after:entities":
            raise Crash(p)

    with pytest.raises(Crash):
        store.commit_units([Unit(u, 1, write_unit(root, u), {}) for u in ("u1", "u2")], fault=crash_after_entities)
    before = versions(store)
    # the rerun batch: u0 fully committed, u1/u2 hold every data table but not commits, u3 is new
    got = DeltaStore(root).commit_units([Unit(u, 1, write_unit(root, u), {"model": "fp"}) for u in ("u0", "u1", "u2", "u3")])
    assert got == {"u0": False, "u1": True, "u2": True, "u3": True}
    after = versions(store)
    # one commit per table for the whole batch (u1/u2 skipped in the data tables, not duplicated)
    assert {t: after[t] - before[t] for t in ("documents", "passages", "entities", "commits")} == {
        "documents": 1, "passages": 1, "entities": 1, "commits": 1}
    assert after["deletions"] is None and after["errors"] is None
    units = ["u0", "u1", "u2", "u3"]
    for table in ("documents", "passages", "entities"):
        assert rows(read_committed(store, table)) == expected_rows(units, table), table
    assert sorted(c["unit_id"] for c in read_committed(store, COMMITS_TABLE).to_pylist()) == units
    with pytest.raises(ValueError, match="twice"):
        store.commit_units([Unit("u9", 1), Unit("u9", 1)])


@pytest.mark.parametrize("where", ["local", "s3"])
def test_writers_racing_to_create_the_tables(where, tmp_path, request):
    """Two drivers (threads) commit different units into an empty root at once: each table is
    created exactly once (version 0), both units land."""
    root = str(tmp_path / "out") if where == "local" else request.getfixturevalue("s3_bucket") + "/out"
    files = {u: write_unit(root, u) for u in ("ua", "ub")}
    barrier = threading.Barrier(2)

    def go(u):
        store = DeltaStore(root, max_attempts=20)
        barrier.wait(timeout=30)
        return store.commit_unit(u, 1, files[u], {})

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(go, ["ua", "ub"])) == [True, True]
    store = DeltaStore(root)
    for table in ("documents", "passages", "entities"):
        assert rows(read_committed(store, table)) == expected_rows(["ua", "ub"], table), table
        assert store.version(table) == 2  # one create + two commits
        if where == "local":  # (history() on moto once hung 180 s in a list request: not used on S3 here)
            assert [h["operation"] for h in DeltaTable(store.table_uri(table)).history()][-1] == "CREATE TABLE"


def test_missing_or_changed_file_is_refused(tmp_path):
    root = str(tmp_path / "out")
    store = DeltaStore(root)
    files = write_unit(root, "u1")
    gone = files[-1]
    os.remove(os.path.join(root, gone.table, gone.path))
    with pytest.raises(DeltaStoreError, match=gone.path.split("/")[-1]):
        store.commit_unit("u1", 1, files, {})
    assert versions(store) == {t: None for t in (*DATA_TABLES, COMMITS_TABLE)}
    assert not store.is_committed("u1", 1)
    # a file whose size differs from the recorded one (e.g. rewritten by a retried task)
    files = write_unit(root, "u2")
    changed = files[0]
    with open(os.path.join(root, changed.table, changed.path), "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DeltaStoreError, match=changed.path.split("/")[-1]):
        store.commit_unit("u2", 1, files, {})
    assert store.file_uris("documents") == [] and not store.is_committed("u2", 1)


def test_as_of_and_protocol(tmp_path):
    root = str(tmp_path / "out")
    store = DeltaStore(root)
    store.commit_unit("u1", 1, write_unit(root, "u1"), {})
    v1, files1 = store.version("entities"), store.file_uris("entities")
    time.sleep(0.05)
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    store.commit_unit("u2", 1, write_unit(root, "u2"), {})
    latest = store.file_uris("entities")
    assert len(files1) == 2 and len(latest) == 4 and set(files1) < set(latest)
    assert store.file_uris("entities", as_of=v1) == files1
    assert store.file_uris("entities", as_of=between) == files1
    assert store.file_uris("entities", as_of=0) == []  # version 0: the empty created table
    assert rows(read_committed(store, "entities", as_of=v1)) == expected_rows(["u1"], "entities")
    for table in (*DATA_TABLES[:3], COMMITS_TABLE):
        assert store.protocol(table) == (1, 2), table
    assert store.file_uris("errors") == [] and store.version("errors") is None


def test_storage_options_translation(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    got = delta_storage_options(
        "s3://b/out", {"key": "K", "secret": "S", "token": "T", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"}}
    )
    assert got == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "K",
        "AWS_SECRET_ACCESS_KEY": "S",
        "AWS_SESSION_TOKEN": "T",
        "AWS_REGION": "eu-west-1",
    }
    assert delta_storage_options("s3://b/out", {"endpoint_url": "https://s3.example"}) == {
        "AWS_ENDPOINT_URL": "https://s3.example",
        "AWS_REGION": "us-east-1",
    }
    assert delta_storage_options("/tmp/x", {"key": "K"}) == {}
    assert "SeCrEt-9" not in repr(DeltaStore("s3://b/out", {"key": "K", "secret": "SeCrEt-9"}))


# -- two processes on moto S3 ------------------------------------------------------------------------
def _race_worker(root: str, units: list[str], out: str, barrier, deadline: float, tables) -> None:
    """A spawned writer: write each unit's files, wait at the barrier, commit; results to ``out``."""
    try:
        store = DeltaStore(root, max_attempts=20)
        prepared = [(u, write_unit(root, u, tables=tables)) for u in units]
        barrier.wait(timeout=max(1.0, deadline - time.time()))
        results = {}
        for u, files in prepared:
            if time.time() > deadline:
                break
            results[u] = store.commit_unit(u, 1, files, {"model": "fp", "run_id": os.path.basename(out)})
    except BaseException:
        Path(out + ".err").write_text(traceback.format_exc())
        raise
    Path(out).write_text(json.dumps(results))


def _run_two(root: str, units_a: list[str], units_b: list[str], tmp_path: Path, tables, timeout_s: float = 90) -> list[dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    deadline = time.time() + timeout_s
    outs = [str(tmp_path / f"w{i}.json") for i in range(2)]
    procs = [ctx.Process(target=_race_worker, args=(root, units, out, barrier, deadline, tables)) for units, out in zip((units_a, units_b), outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=max(1.0, deadline + 15 - time.time()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
    # judge by what was written, not by exit codes (delta-rs may SIGABRT at exit, delta-rs #2184)
    missing = [o for o in outs if not os.path.exists(o)]
    errors = [Path(o + ".err").read_text() for o in outs if os.path.exists(o + ".err")]
    assert not missing, f"writers did not finish: {missing}, exit codes {[p.exitcode for p in procs]}\n" + "\n".join(errors)
    return [json.loads(Path(o).read_text()) for o in outs]


def test_two_processes_race_the_same_unit(s3_bucket, tmp_path):
    root = s3_bucket + "/out"
    for round_, unit in enumerate(["u-fresh", "u-existing"]):  # first on tables that do not exist yet
        a, b = _run_two(root, [unit], [unit], tmp_path / f"r{round_}", ("documents", "passages", "entities"))
        assert sorted([a[unit], b[unit]]) == [False, True]  # exactly one writer completed the unit
    store = DeltaStore(root)
    for table in ("documents", "passages", "entities"):
        assert rows(read_committed(store, table)) == expected_rows(["u-fresh", "u-existing"], table), table
    commits = read_committed(store, COMMITS_TABLE).to_pylist()
    assert sorted(c["unit_id"] for c in commits) == ["u-existing", "u-fresh"]
    # each table: one create and exactly one commit per unit (the loser committed nothing)
    assert {t: store.version(t) for t in ("documents", "passages", "entities", COMMITS_TABLE)} == {
        "documents": 2, "passages": 2, "entities": 2, COMMITS_TABLE: 2}


def test_two_processes_commit_different_units(s3_bucket, tmp_path):
    root = s3_bucket + "/out"
    units_a = [f"a{i:02d}" for i in range(10)]
    units_b = [f"b{i:02d}" for i in range(10)]
    a, b = _run_two(root, units_a, units_b, tmp_path, ("documents", "entities"))
    assert a == {u: True for u in units_a} and b == {u: True for u in units_b}
    store = DeltaStore(root)
    for table in ("documents", "entities"):
        assert rows(read_committed(store, table)) == expected_rows(units_a + units_b, table), table
    assert store.version("passages") is None
    commits = read_committed(store, COMMITS_TABLE).to_pylist()
    assert sorted(c["unit_id"] for c in commits) == sorted(units_a + units_b)
    assert all(store.is_committed(u, 1) for u in units_a + units_b)
    assert {t: store.version(t) for t in ("documents", "entities", COMMITS_TABLE)} == {"documents": 20, "entities": 20, COMMITS_TABLE: 20}


def test_a_table_of_another_schema_is_refused(tmp_path):
    """A table whose columns are not this biogliner's (another schema version) is never appended to."""
    from deltalake import write_deltalake

    root = str(tmp_path / "out")
    other = pa.table({"doc_id": pa.array(["pubmed:1"]), "legacy": pa.array([1]), "source": pa.array(["pubmed"]), "input": pa.array(["x"])})
    write_deltalake(f"{root}/documents", other, partition_by=["source", "input"])
    files = write_unit(root, "u0")
    with pytest.raises(DeltaStoreError, match="another biogliner schema.*legacy"):
        DeltaStore(root).commit_units([Unit("u0", 1, files, {})])
