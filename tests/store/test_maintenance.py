"""``biogliner store optimize|vacuum|history`` (biogliner.store.maintenance) on local disk and moto S3."""

from __future__ import annotations

import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("deltalake")

from deltalake import DeltaTable  # noqa: E402

from biogliner.cli import main  # noqa: E402
from biogliner.schema import TABLES  # noqa: E402
from biogliner.store import maintenance  # noqa: E402
from biogliner.store.delta import APP_ID_PREFIX, COMMITS_TABLE, delta_storage_options, write_data_file  # noqa: E402
from biogliner.store.output import Output  # noqa: E402

INPUTS = [f"pubmed26n{i:04d}" for i in range(1, 6)]
LABEL_SETS = ("bio@1", "chem@1")


# -- data builders ---------------------------------------------------------------------------------
def table_rows(table: str, input_name: str, run_id: str, n: int = 3, label_set: str = "bio@1") -> pa.Table:
    """``n`` deterministic rows of ``table`` (file columns only), built from ``schema.TABLES``."""
    schema = TABLES[table]
    cols = {}
    for f in schema:
        if f.name == "doc_id":
            values = [f"pubmed:{input_name}-{i}" for i in range(n)]
        elif f.name == "run_id":
            values = [run_id] * n
        elif f.name == "label_set":
            values = [label_set] * n
        elif pa.types.is_integer(f.type):
            values = list(range(n))
        elif pa.types.is_floating(f.type):
            values = [0.5 + i / 8 for i in range(n)]
        else:
            values = [f"{f.name} {input_name} {label_set} {i}" for i in range(n)]
        cols[f.name] = pa.array(values, f.type)
    return pa.Table.from_pydict(cols, schema=schema)


def commit_input(out: Output, input_name: str, run_id: str = "r1") -> dict[str, bool]:
    parse = {t: table_rows(t, input_name, run_id) for t in ("documents", "passages", "errors")}
    entities = {ls: table_rows("entities", input_name, run_id, label_set=ls) for ls in LABEL_SETS}
    return out.commit_tables("pubmed", input_name, run_id, parse=parse, entities=entities, model="fp")


def build_root(root: str) -> Output:
    out = Output(root)
    for i, name in enumerate(INPUTS):
        assert all(commit_input(out, name, f"r{i}").values())
    return out


def opts(root: str) -> dict | None:
    return delta_storage_options(root) or None


def content(root: str, table: str) -> list[tuple]:
    t = DeltaTable(f"{root}/{table}", storage_options=opts(root)).to_pyarrow_table()
    names = sorted(t.column_names)
    return sorted(tuple(repr(r[k]) for k in names) for r in t.select(names).to_pylist())


def n_files(root: str, table: str) -> int:
    return len(DeltaTable(f"{root}/{table}", storage_options=opts(root)).file_uris())


def app_ids(root: str) -> list[str]:
    t = DeltaTable(f"{root}/{COMMITS_TABLE}", storage_options=opts(root)).to_pyarrow_table(columns=["unit_id"])
    return sorted(APP_ID_PREFIX + u for u in t.column("unit_id").to_pylist())


def all_tables() -> list[str]:
    return ["documents", "passages", "entities", "errors", COMMITS_TABLE]


def assert_intact(root: str, before: dict[str, list[tuple]]) -> None:
    """Same rows, protocol 1/2, every unit's app transaction still there, a rerun adds nothing."""
    for t in all_tables():
        assert content(root, t) == before[t], t
        p = DeltaTable(f"{root}/{t}", storage_options=opts(root)).protocol()
        assert (p.min_reader_version, p.min_writer_version) == (1, 2), t
    commits = DeltaTable(f"{root}/{COMMITS_TABLE}", storage_options=opts(root))
    assert all(commits.transaction_version(a) == 1 for a in app_ids(root))
    out = Output(root)
    assert not any(commit_input(out, INPUTS[0], "r0").values())  # committed before: skipped
    for t in all_tables():
        assert content(root, t) == before[t], t


# -- optimize ------------------------------------------------------------------------------------------
def test_optimize_compacts_and_keeps_rows_transactions_and_protocol(tmp_path):
    root = str(tmp_path / "out")
    build_root(root)
    before = {t: content(root, t) for t in all_tables()}
    assert n_files(root, COMMITS_TABLE) == len(INPUTS)
    assert n_files(root, "entities") == len(INPUTS) * len(LABEL_SETS)

    results = {r["table"]: r for r in maintenance.optimize(root)}
    assert sorted(results) == sorted(all_tables())  # the tables present, nothing else
    assert all(r["error"] is None and r["protocol"] == [1, 2] for r in results.values())
    c, e, d = results[COMMITS_TABLE], results["entities"], results["documents"]
    assert (c["files_before"], c["files_after"], c["files_removed"], c["files_added"]) == (5, 1, 5, 1)
    assert c["version_after"] == c["version_before"] + 1 and c["bytes_added"] > 0
    assert (e["files_before"], e["files_after"]) == (10, 5)  # two label sets per input partition -> one file
    assert (d["files_removed"], d["version_after"]) == (0, d["version_before"])  # one file per partition: nothing to do
    assert n_files(root, COMMITS_TABLE) == 1
    for uri in DeltaTable(f"{root}/entities").file_uris():  # rewritten as zstd, like the workers' files
        assert pq.ParquetFile(uri).metadata.row_group(0).column(0).compression == "ZSTD"

    assert_intact(root, before)
    # the app transactions also survive a checkpoint written after the compaction (readers then
    # start from the checkpoint, not from a replay of every log entry)
    for t in all_tables():
        DeltaTable(f"{root}/{t}").create_checkpoint()
    assert os.path.exists(os.path.join(root, COMMITS_TABLE, "_delta_log", "_last_checkpoint"))
    assert_intact(root, before)
    # a second run has nothing to do; a new unit still commits on top of the compacted tables
    assert all(r["files_removed"] == 0 for r in maintenance.optimize(root))
    assert all(commit_input(Output(root), "pubmed26n0099", "r9").values())
    assert n_files(root, COMMITS_TABLE) == 2


def test_optimize_named_tables_and_target_size(tmp_path):
    root = str(tmp_path / "out")
    build_root(root)
    (r,) = maintenance.optimize(root, tables=[COMMITS_TABLE], target_size=1)
    assert r["table"] == COMMITS_TABLE and r["error"] is None
    assert r["files_after"] >= 1
    assert n_files(root, "entities") == 10  # not named: untouched
    with pytest.raises(ValueError, match="unknown table"):
        maintenance.optimize(root, tables=["nope"])
    with pytest.raises(maintenance.NotAnOutputRoot, match="no current_documents table"):
        maintenance.optimize(root, tables=["current_documents"])
    with pytest.raises(maintenance.NotAnOutputRoot, match="not a biogliner output root"):
        maintenance.optimize(str(tmp_path / "elsewhere"))


# -- vacuum --------------------------------------------------------------------------------------------
def test_vacuum_removes_orphans_by_age_and_replaced_files(tmp_path):
    root = str(tmp_path / "out")
    out = build_root(root)
    out.put_json("_runs/r0.json", {"run_id": "r0"})
    maintenance.optimize(root)
    before = {t: content(root, t) for t in all_tables()}
    # a worker file never committed (a crashed run), next to the committed data
    orphan = write_data_file(root, "entities", table_rows("entities", INPUTS[1], "crashed"), {"source": "pubmed", "input": INPUTS[1]})
    orphan_path = os.path.join(root, "entities", orphan.path)

    def listed(**kw) -> dict[str, list[str]]:
        res = maintenance.vacuum(root, **kw)
        assert all(t["error"] is None for t in res["tables"])
        return {t["table"]: t["files"] for t in res["tables"]}

    # fresh: kept at the default and at 24 h (the compacted-away files too: removed just now)
    assert not any(listed().values())
    assert not any(listed(retention_hours=24).values())
    # below 24 h: refused unless forced
    with pytest.raises(maintenance.RetentionTooShort, match="running job"):
        maintenance.vacuum(root, retention_hours=0)
    forced = listed(retention_hours=0, force_short_retention=True)
    assert orphan.path in forced["entities"] and len(forced["entities"]) == 1 + 10  # orphan + compacted-away
    assert len(forced[COMMITS_TABLE]) == 5
    assert os.path.exists(orphan_path)  # dry run
    # lite mode only sees what the log removed, never the orphan
    assert orphan.path not in listed(retention_hours=0, force_short_retention=True, full=False)["entities"]

    # once older than the retention, the orphan alone is listed at 24 h
    old = time.time() - 48 * 3600
    os.utime(orphan_path, (old, old))
    assert listed(retention_hours=24) == {t: ([orphan.path] if t == "entities" else []) for t in all_tables()}
    res = maintenance.vacuum(root, retention_hours=24, apply=True)
    assert res["dry_run"] is False and not os.path.exists(orphan_path)
    assert res["run_summaries"]["count"] == 1 and res["run_summaries"]["newest"] == "r0.json"
    assert_intact(root, before)

    # the replaced files go with a forced short retention; the tables still read the same
    files_before = sum(len(files) for _, _, files in os.walk(root))
    res = maintenance.vacuum(root, retention_hours=0, force_short_retention=True, apply=True)
    removed = sum(t["count"] for t in res["tables"])
    # compacted-away entities (10) and commits (5) files, and the 5 files the skipped rerun in
    # assert_intact wrote (documents, passages, errors, entities x2) and never committed
    assert removed == 10 + 5 + 5 and sum(len(files) for _, _, files in os.walk(root)) < files_before
    assert os.path.exists(os.path.join(root, "_runs", "r0.json"))  # run summaries are never deleted
    assert_intact(root, {t: content(root, t) for t in all_tables()})
    assert all(content(root, t) == before[t] for t in all_tables())


# -- history -------------------------------------------------------------------------------------------
def test_history_lists_versions_and_their_units(tmp_path):
    root = str(tmp_path / "out")
    build_root(root)
    maintenance.optimize(root, tables=[COMMITS_TABLE])
    h = maintenance.history(root)
    assert [r["version"] for r in h] == list(range(len(INPUTS) + 1, -1, -1))  # newest first, down to 0
    assert h[0]["operation"] == "OPTIMIZE" and h[0]["units"] == [] and (h[0]["files_added"], h[0]["files_removed"]) == (1, 5)
    assert h[-1]["operation"] == "CREATE TABLE" and h[-1]["units"] == []
    for r, (i, name) in zip(h[1:-1], reversed(list(enumerate(INPUTS)))):
        assert r["operation"] == "WRITE" and r["timestamp"].endswith("Z")
        units = {u["unit_id"]: u for u in r["units"]}
        assert sorted(units) == sorted([f"pubmed/{name}", *(f"pubmed/{name}#{ls}" for ls in LABEL_SETS)])
        assert units[f"pubmed/{name}"]["kind"] == "parse" and units[f"pubmed/{name}#bio@1"]["kind"] == "entities"
        assert all(u["version"] == 1 and u["run_id"] == f"r{i}" and u["status"] == "committed" for u in units.values())
    assert [r["version"] for r in maintenance.history(root, limit=2)] == [len(INPUTS) + 1, len(INPUTS)]
    ents = maintenance.history(root, table="entities", limit=1)
    assert [u["unit_id"] for u in ents[0]["units"]] == [f"pubmed/{INPUTS[-1]}#{ls}" for ls in LABEL_SETS]
    with pytest.raises(ValueError):
        maintenance.history(root, limit=0)


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli(tmp_path, capsys):
    root = str(tmp_path / "out")
    build_root(root)
    orphan = write_data_file(root, "errors", table_rows("errors", INPUTS[0], "crashed"), {"source": "pubmed", "input": INPUTS[0]})

    assert main(["store", "optimize", "--output", root]) == 0
    text = capsys.readouterr().out
    assert "commits" in text and "5 -> 1" in text and "1/2" in text
    assert main(["store", "optimize", "--output", root, "--table", "commits", "--target-size", "1", "--format", "json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["table"] == "commits"

    args = ["store", "vacuum", "--output", root, "--retention-hours", "0", "--force-short-retention"]
    assert main([*args, "--table", "errors", "--show", "5"]) == 0
    text = capsys.readouterr().out
    assert "dry run" in text and orphan.path in text and "would delete 1 file(s)" in text
    assert os.path.exists(os.path.join(root, "errors", orphan.path))
    assert main([*args, "--format", "json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["table"]: r["count"] for r in lines if "table" in r}["errors"] == 1
    assert main([*args, "--table", "errors", "--apply"]) == 0
    assert "deleted 1 file(s)" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(root, "errors", orphan.path))

    assert main(["store", "history", "--output", root, "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["version", "timestamp", "operation", "files", "units"]
    assert "OPTIMIZE" in text and f"pubmed/{INPUTS[-1]} v1  kind=parse" in text
    assert main(["store", "history", "--output", root, "--table", "entities", "--format", "json", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["table"] == "entities"

    # usage errors: 2; not an output root (or no such table): 3
    assert main([*args[:4], "--retention-hours", "3"]) == 2
    assert "below 24 h" in capsys.readouterr().err
    assert main(["store", "history", "--output", root, "--storage-options", "{nope"]) == 2
    assert main(["store", "optimize", "--output", root, "--table", "bogus"]) == 2
    assert main(["store"]) == 2
    assert main(["store", "history", "--output", root, "--table", "current_entities"]) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    for action in ("optimize", "vacuum", "history"):
        assert main(["store", action, "--output", str(empty)]) == 3
        assert "not a biogliner output root" in capsys.readouterr().err
    assert main(["store", "history", "--output", str(tmp_path / "missing")]) == 3


def test_on_s3(s3_bucket, capsys):
    root = f"{s3_bucket}/out"
    build_root(root)
    before = {t: content(root, t) for t in all_tables()}
    orphan = write_data_file(root, "entities", table_rows("entities", INPUTS[2], "crashed"), {"source": "pubmed", "input": INPUTS[2]})
    secret = "s3cr3t-never-printed"
    so = json.dumps({"key": "testing", "secret": secret})
    common = ["--output", root, "--storage-options", so]

    assert main(["store", "optimize", *common, "--format", "json"]) == 0
    res = {r["table"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert res[COMMITS_TABLE]["files_after"] == 1 and res["entities"]["files_after"] == len(INPUTS)
    assert n_files(root, COMMITS_TABLE) == 1

    assert main(["store", "vacuum", *common, "--retention-hours", "0", "--force-short-retention", "--apply"]) == 0
    out, err = capsys.readouterr()
    assert orphan.path in out and "deleted" in out
    assert maintenance.vacuum(root, retention_hours=0, force_short_retention=True)["tables"][2]["files"] == []
    assert_intact(root, before)

    assert main(["store", "history", *common, "--limit", "50"]) == 0
    out2, err2 = capsys.readouterr()
    assert "VACUUM END" in out2 and f"pubmed/{INPUTS[0]}#bio@1 v1" in out2
    assert secret not in out + err + out2 + err2


def test_optimize_refuses_a_table_needing_a_newer_protocol(tmp_path, capsys):
    """A tz-less timestamp needs timestampNtz (3/7): such a table (not written by biogliner) is
    refused and reported, exit 1; the other tables are still compacted."""
    from datetime import datetime

    from deltalake import write_deltalake

    root = str(tmp_path / "out")
    build_root(root)
    naive = pa.table({"key": ["a"], "at": pa.array([datetime(2026, 1, 1)], pa.timestamp("us"))})
    for _ in range(2):
        write_deltalake(f"{root}/current_state", naive, mode="append")
    assert main(["store", "optimize", "--output", root]) == 1
    captured = capsys.readouterr()
    assert "current_state: refused: time-zone-less timestamp column(s) ['at']" in captured.err
    assert n_files(root, "current_state") == 2 and n_files(root, COMMITS_TABLE) == 1
