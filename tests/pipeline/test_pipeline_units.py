"""Pipeline stages as plain callables (no Ray): config, plan, parse, commit."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import corrupt_shard_bytes

from biogliner.pipeline.args import add_arguments, config_from_args
from biogliner.pipeline.config import AnnotateConfig, ConfigError
from biogliner.pipeline.faults import parse_fault_spec
from biogliner.pipeline.plan import InputFile, WorkUnit, expand_inputs, identify, make_plan, pmc_unit_name
from biogliner.pipeline.stages import stream
from biogliner.pipeline.stages.commit import BankInfo, Committer
from biogliner.pipeline.stages.read import ParseParams, parse_input
from biogliner.schema import TABLES, Deletion, Document, Skip
from biogliner.sources import iter_events
from biogliner.store.output import Output

# -- config -----------------------------------------------------------------------------------


def test_config_validates_on_construction():
    with pytest.raises(ConfigError, match="num_model_workers"):
        AnnotateConfig(num_model_workers=0, model="m")
    with pytest.raises(ConfigError, match="labels"):
        AnnotateConfig(labels=(), model="m")
    with pytest.raises(ConfigError, match="threshold"):
        AnnotateConfig(threshold=1.5, model="m")
    with pytest.raises(ConfigError, match="run_id"):
        AnnotateConfig(run_id="a/b", model="m")
    with pytest.raises(ConfigError, match="fault"):
        AnnotateConfig(fault="nowhere=1", model="m")
    c = AnnotateConfig(model="m", storage_options={"key": "SECRET", "secret": "SECRET"})
    assert c.run_id and c.inputs == () and c.labels == ("biomed",)
    assert "SECRET" not in json.dumps(c.public_dict())


def test_config_model_from_environment(monkeypatch):
    monkeypatch.setenv("BIOGLINER_MODEL", "/models/x")
    assert AnnotateConfig().model == "/models/x"
    assert AnnotateConfig(model="/other").model == "/other"


def test_args_build_the_same_config():
    p = add_arguments(argparse.ArgumentParser())
    args = p.parse_args(
        ["--input", "a.xml", "--input", "s3://b/*.gz", "--labels", "core", "--labels", "x.yaml", "--num-model-workers", "3",
         "--storage-options", '{"endpoint_url": "http://127.0.0.1:1"}', "--model", "m", "--threshold", "0.6"]
    )
    c = config_from_args(args)
    assert c.inputs == ("a.xml", "s3://b/*.gz") and c.labels == ("core", "x.yaml")
    assert c.num_model_workers == 3 and c.storage_options == {"endpoint_url": "http://127.0.0.1:1"} and c.threshold == 0.6
    with pytest.raises(ConfigError, match="storage-options"):
        config_from_args(p.parse_args(["--storage-options", "{nope", "--model", "m"]))


def test_each_option_is_declared_once_on_the_config(monkeypatch):
    """The parser is generated from AnnotateConfig's fields: every field but fault_dir is an
    option, absent options give the field's default, and a value given reaches its field."""
    from dataclasses import fields

    from biogliner.pipeline.config import cli_fields

    monkeypatch.delenv("BIOGLINER_FAULT", raising=False)
    assert {f.name for f in fields(AnnotateConfig)} - {f.name for f in cli_fields()} == {"fault_dir"}
    p = add_arguments(argparse.ArgumentParser())
    base = config_from_args(p.parse_args(["--model", "m", "--run-id", "r1"]))
    assert base == AnnotateConfig(model="m", run_id="r1")
    given = {"--input": ["a.xml"], "--output": "/o", "--storage-options": '{"k": 1}', "--run-id": "r2", "--revision": "v1",
             "--cache-dir": "/c", "--labels": ["core"], "--threshold": "0.7", "--device": "cpu", "--precision": "bf16",
             "--num-model-workers": "3", "--gpus-per-worker": "0.5", "--cpus-per-worker": "2", "--model-threads": "2",
             "--max-parse-tasks": "5", "--batch-size": "4", "--rows-per-call": "40", "--block-rows": "9", "--pmc-unit-size": "7",
             "--commit-wait": "0.5", "--block-mb": "2", "--progress": "log", "--log-every": "5", "--fault": "ner.call=1",
             "--no-verify-md5": None, "--reannotate": None, "--no-refresh-current": None, "--backend": "torch"}
    argv = ["--model", "m2"]
    for flag, v in given.items():
        for one in v if isinstance(v, list) else [v]:
            argv += [flag] if one is None else [flag, one]
    c = config_from_args(p.parse_args(argv))
    changed = {f.name for f in fields(AnnotateConfig) if getattr(c, f.name) != getattr(base, f.name)}
    assert changed == {f.name for f in cli_fields()} - {"backend"}  # backend given as its default
    assert c.storage_options == {"k": 1} and c.inputs == ("a.xml",) and c.labels == ("core",) and c.fault == "ner.call=1"
    assert set(c.public_dict()) == {f.name for f in cli_fields() if f.name not in ("storage_options", "fault")} | {"storage_options_keys"}


def test_fault_spec():
    assert parse_fault_spec("driver.after_commit=2,ner.call=1") == {"driver.after_commit": 2, "ner.call": 1}
    with pytest.raises(ConfigError):
        parse_fault_spec("driver.after_commit=0")


# -- plan -------------------------------------------------------------------------------------


def _commit(out: Output, files: list[InputFile], unit: str, *, status="committed", sets=("biomed@1",), md5=None, source=None):
    """Record ``files`` as one committed unit (no data rows: the plan reads only the commits table)."""
    source = source or files[0].source
    inputs = [{**f.record(), "md5": md5 or f.md5, "status": status} for f in files]
    docs = TABLES["documents"].empty_table()
    ents = {s: TABLES["entities"].empty_table() for s in sets}
    out.commit_tables(source, unit, "r0", {"documents": docs}, ents, model="fp", inputs=inputs, status=status,
                      label_set_hashes={s: "h" for s in sets})


def test_plan_skips_only_what_is_committed_from_the_same_bytes(sample_dir, tmp_path):
    urls = expand_inputs((str(sample_dir),))
    assert not any(u.endswith((".md5", ".json")) for u in urls)
    files = {identify(u).input: identify(u) for u in urls}
    assert {f.source for f in files.values()} == {"pubmed", "pmc"}
    assert files["pubmed26n0001"].md5 and files["pubmed26n0001"].source == "pubmed"
    assert files["PMC0000001.1"].source == "pmc" and files["PMC0000001.1"].mtime
    out = Output(str(tmp_path / "out"))
    plan = make_plan((str(sample_dir),), out, ["biomed@1"])
    # one unit per PubMed file, the two PMC files in one unit
    assert sorted((u.source, len(u.members)) for u in plan.todo) == [("pmc", 2), ("pubmed", 1), ("pubmed", 1)]
    assert plan.files_todo == len(urls) == 4 and not plan.done
    assert all(u.label_sets == ("biomed@1",) and u.parse_version == 1 for u in plan.todo)
    pmc_unit = next(u for u in plan.todo if u.source == "pmc")
    assert pmc_unit.input == pmc_unit_name(list(pmc_unit.members))
    assert make_plan((str(sample_dir),), out, ["biomed@1"]).todo == plan.todo  # the same units again

    _commit(out, [files["pubmed26n0001"]], "pubmed26n0001")
    _commit(out, [files["pubmed26n0002"]], "pubmed26n0002", md5="0" * 32)  # other bytes: redo
    _commit(out, [files["PMC0000001.1"]], "pmc-old-failed", status="failed")  # failed: retry
    _commit(out, [files["naegleria-case"]], "pmc-old", sets=("core@1",))  # missing set: only that one
    plan = make_plan((str(sample_dir),), out, ["biomed@1", "core@1"])
    todo = {(u.input, tuple(m.input for m in u.members)): (u.label_sets, u.parse_version, u.entity_versions) for u in plan.todo}
    assert todo == {
        ("pubmed26n0001", ("pubmed26n0001",)): (("core@1",), None, (("core@1", 1),)),
        ("pubmed26n0002", ("pubmed26n0002",)): (("biomed@1", "core@1"), 2, (("biomed@1", 2), ("core@1", 1))),
        (pmc_unit_name([files["PMC0000001.1"]]), ("PMC0000001.1",)): (("biomed@1", "core@1"), 1, (("biomed@1", 1), ("core@1", 1))),
        ("pmc-old", ("naegleria-case",)): (("biomed@1",), None, (("biomed@1", 1),)),
    }
    plan = make_plan((str(sample_dir),), out, ["biomed@1"])
    assert [f.input for f in plan.done] == ["pubmed26n0001"] and plan.total == 4


def test_pmc_units_are_deterministic_and_rerun_the_same_after_a_partial_commit(tmp_path):
    arts = [InputFile(url=f"/x/PMC{i:07d}.1.xml", source="pmc", input=f"PMC{i:07d}.1", size=100 + i, etag=f"e{i}", mtime=1_700_000_000 + i % 7)
            for i in range(23)]
    out = Output(str(tmp_path / "out"))
    plan = make_plan((), out, ["biomed@1"], identified=tuple(arts), pmc_unit_size=5)
    assert [len(u.members) for u in plan.todo] == [5, 5, 5, 5, 3]
    assert sorted(m.input for u in plan.todo for m in u.members) == sorted(a.input for a in arts)
    assert len({u.input for u in plan.todo}) == 5
    # the listing in another order plans the same units
    again = make_plan((), out, ["biomed@1"], identified=tuple(reversed(arts)), pmc_unit_size=5)
    assert {u.input: u.members for u in again.todo} == {u.input: u.members for u in plan.todo}
    # two units committed (a crashed run): the rerun plans exactly the other three, unchanged
    for u in plan.todo[1:3]:
        _commit(out, list(u.members), u.input)
    rerun = make_plan((), out, ["biomed@1"], identified=tuple(arts), pmc_unit_size=5)
    assert [u.input for u in rerun.todo] == [u.input for u in plan.todo if u not in plan.todo[1:3]]
    assert len(rerun.done) == 10
    # a metadata-only change of a committed article (a new ETag, a later mtime): a new unit that sorts after
    changed = [a if a.input != plan.todo[1].members[0].input else InputFile(a.url, "pmc", a.input, a.size, "new", mtime=1_800_000_000) for a in arts]
    later = make_plan((), out, ["biomed@1"], identified=tuple(changed), pmc_unit_size=5)
    new_unit = next(u for u in later.todo if plan.todo[1].members[0].input in [m.input for m in u.members])
    assert new_unit.input > max(u.input for u in plan.todo) and new_unit.input not in {u.input for u in plan.todo}


def test_plan_rejects_an_empty_glob(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input"):
        expand_inputs((str(tmp_path / "*.xml.gz"),))


# -- parse ------------------------------------------------------------------------------------


def _params(root, **kw):
    return ParseParams(output=str(root), storage_options={}, run_id="r1", **kw)


def _unit(item: InputFile, sets=("biomed@1",)) -> WorkUnit:
    return WorkUnit(item.source, item.input, (item,), sets, 1)


def _file(root, info, table) -> str:
    (f,) = [f for f in info["files"] if f["table"] == table]
    return str(root / table / f["path"])


def _events(url):
    return list(iter_events(url))


def test_parse_input_streams_blocks_and_writes_the_parse_tables(sample_dir, tmp_path):
    url = str(sample_dir / "pubmed" / "pubmed26n0002.xml.gz")
    item = identify(url)
    events = _events(url)
    docs = [e for e in events if isinstance(e, Document)]
    passages = [(d.position, i, p.text) for d in docs for i, p in enumerate(d.passages)]
    nonblank = [p for p in passages if p[2].strip()]
    blocks = list(parse_input(_unit(item), _params(tmp_path / "out", block_rows=3)))

    *data, end = blocks
    assert len(data) == -(-len(nonblank) // 3) >= 2  # several blocks per shard
    rows = pa.concat_tables(data).to_pylist()
    assert all(r["kind"] == stream.PASSAGE for r in rows)
    assert [(r["position"], r["passage_index"], r["text"]) for r in rows] == nonblank
    assert end.num_rows == 1 and end.column("kind")[0].as_py() == stream.END
    info = json.loads(end.column("info")[0].as_py())
    assert info["status"] == "committed" and info["error"] is None
    assert info["counts"]["documents"] == len(docs) and info["counts"]["ner_passages"] == len(nonblank)
    assert info["counts"]["deletions"] == sum(isinstance(e, Deletion) for e in events) == 2

    root = tmp_path / "out"
    assert info["members"] == [{**item.record(), "status": "committed", "error": None}]
    # Delta data files, partitioned by the unit, named afresh (invisible until committed)
    assert all(f["path"].startswith("source=pubmed/input=pubmed26n0002/part-") and f["size"] > 0 for f in info["files"])
    documents = pq.read_table(_file(root, info, "documents"))
    assert documents.schema.metadata[b"biogliner.schema_version"] == b"1"
    assert documents.column("doc_id").to_pylist() == [d.doc_id for d in docs]
    assert documents.column("n_passages").to_pylist() == [len(d.passages) for d in docs]
    assert json.loads(next(f for f in info["files"] if f["table"] == "documents")["stats"])["numRecords"] == len(docs)
    ptab = pq.read_table(_file(root, info, "passages"))
    assert ptab.column("text").to_pylist() == [p[2] for p in passages]
    dtab = pq.read_table(_file(root, info, "deletions"))
    assert dtab.column("doc_id").to_pylist() == [e.doc_id for e in events if isinstance(e, Deletion)]
    assert pq.ParquetFile(_file(root, info, "documents")).metadata.row_group(0).column(0).compression == "ZSTD"
    # entities only (the parse is committed): passages for NER, no parse file written again
    again = list(parse_input(WorkUnit(item.source, item.input, (item,), ("core@1",), None), _params(tmp_path / "out2", block_rows=3)))
    assert json.loads(again[-1].column("info")[0].as_py())["files"] == []
    assert pa.concat_tables(again[:-1]).to_pylist() == rows


def test_parse_input_records_a_corrupt_file_and_keeps_what_came_before(tmp_path):
    bad = tmp_path / "in" / "pubmed26n0009.xml.gz"
    bad.parent.mkdir()
    bad.write_bytes(corrupt_shard_bytes())
    good_before = [e for e in _events_until_error(str(bad)) if isinstance(e, Document)]
    assert good_before, "the cut must come after some good records"
    blocks = list(parse_input(_unit(identify(str(bad))), _params(tmp_path / "out")))
    info = json.loads(blocks[-1].column("info")[0].as_py())
    assert info["status"] == "failed" and "pubmed26n0009" in info["error"]
    assert info["members"][0]["status"] == "failed"
    errors = pq.read_table(_file(tmp_path / "out", info, "errors")).to_pylist()
    file_errors = [e for e in errors if e["kind"] == "file_error"]
    assert len(file_errors) == 1 and file_errors[0]["source_file"] == bad.name
    assert file_errors[0]["position"] == good_before[-1].position
    documents = pq.read_table(_file(tmp_path / "out", info, "documents"))
    assert documents.num_rows == len(good_before) == info["counts"]["documents"]


def test_a_bad_file_in_a_pmc_unit_fails_alone(tmp_path, sample_dir):
    good = identify(str(sample_dir / "pmc" / "naegleria-case.nxml"))
    bad_path = tmp_path / "in" / "PMC0000009.1.xml"
    bad_path.parent.mkdir()
    bad_path.write_bytes((sample_dir / "pmc" / "naegleria-case.nxml").read_bytes()[:700])
    bad = identify(str(bad_path))
    unit = WorkUnit("pmc", "pmc-u", (bad, good), ("biomed@1",), 1)
    info = json.loads(list(parse_input(unit, _params(tmp_path / "out")))[-1].column("info")[0].as_py())
    assert info["status"] == "committed" and [m["status"] for m in info["members"]] == ["failed", "committed"]
    assert info["counts"]["files"] == 2 and info["counts"]["files_failed"] == 1 and "PMC0000009.1" in info["error"]
    errors = pq.read_table(_file(tmp_path / "out", info, "errors")).to_pylist()
    assert [e["source_file"] for e in errors if e["kind"] == "file_error"] == [bad_path.name]


def _events_until_error(url):
    from biogliner.sources import SourceError

    out = []
    try:
        for e in iter_events(url):
            out.append(e)
    except SourceError:
        pass  # expected: the shard is cut; the events before it are what we compare with
    return out


def test_parse_input_counts_skips_as_error_rows(tmp_path, sample_dir):
    # every sample file: skips (if any) are error rows of kind "skip", and counted
    for url in expand_inputs((str(sample_dir),)):
        events = _events(url)
        skips = Counter(e.reason for e in events if isinstance(e, Skip))
        blocks = list(parse_input(_unit(identify(url)), _params(tmp_path / "out")))
        info = json.loads(blocks[-1].column("info")[0].as_py())
        assert info["counts"]["skips"] == dict(skips)
        assert info["counts"]["errors"] == sum(skips.values())


# -- commit -----------------------------------------------------------------------------------


def _written(out_root, unit_input, mbs, rows_by_set, keys=None):
    """A model-stage ``written`` row: entity files written now for ``rows_by_set`` (label set -> rows)."""
    from dataclasses import asdict

    from biogliner.store.delta import write_data_file

    files = {}
    for ls, rows in rows_by_set.items():
        t = pa.Table.from_pylist([{**r, "label_set": ls, "model": "fp", "run_id": "r1"} for r in rows], schema=TABLES["entities"])
        files[ls] = asdict(write_data_file(out_root, "entities", t, {"source": "pubmed", "input": unit_input}))
    per_label = {ls: dict(Counter(r["label"] for r in rows)) for ls, rows in rows_by_set.items()}
    keys = keys or {m: [] for m in mbs}
    return {"kind": stream.WRITTEN_KIND, "source": "pubmed", "input": unit_input, "mbs": mbs,
            "keys": __import__("pickle").dumps(keys), "info": json.dumps({"files": files, "per_label": per_label, "passages": 2 * len(mbs)})}


def _end(unit_input, info):
    return {"kind": stream.END, "source": "pubmed", "input": unit_input, "mbs": None, "keys": None, "info": json.dumps(info)}


def _ent(doc, pos, start, label):
    return {"doc_id": doc, "version": 1, "position": pos, "passage_index": 0, "start": start, "end": start + 2, "text": "xx",
            "label": label, "score": 0.9}


def _table(root, table):
    from deltalake import DeltaTable

    return DeltaTable(f"{root}/{table}").to_pyarrow_table()


def test_committer_waits_for_every_micro_batch_drops_retries_and_commits_the_commits_row_last(tmp_path, sample_dir):
    item = identify(str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz"))
    root = str(tmp_path / "out")
    out = Output(root)
    unit = WorkUnit("pubmed", "pubmed26n0001", (item,), ("a@1", "b@1"), 1)
    banks = [BankInfo("a@1", "fp", ("gene", "disease"), "ha"), BankInfo("b@1", "fp", ("species",), "hb")]
    c = Committer(out, [unit], banks, "r1")
    from dataclasses import asdict

    from biogliner.store.delta import write_data_file

    docs = pa.Table.from_pylist([dict(doc_id="pubmed:1", pmid=1, version=1, source_file="x", position=0, n_passages=1, run_id="r1")],
                                schema=TABLES["documents"])
    doc_file = asdict(write_data_file(root, "documents", docs, {"source": "pubmed", "input": "pubmed26n0001"}))
    end_info = {"status": "committed", "error": None, "files": [doc_file], "members": [{**item.record(), "status": "committed"}],
                "counts": {"documents": 1, "ner_passages": 6}, "timings": {"parse_s": 0.1}, "micro_batches": 3}
    first = _written(root, "pubmed26n0001", [0], {"a@1": [_ent("pubmed:1", 0, 5, "disease")], "b@1": [_ent("pubmed:1", 0, 0, "species")]})
    assert c.add(pa.Table.from_pylist([first, _end("pubmed26n0001", end_info)], schema=stream.WRITTEN)) == []
    assert out.state().records == ()  # nothing visible before the unit is complete
    retried = _written(root, "pubmed26n0001", [0], {"a@1": [_ent("pubmed:1", 0, 5, "disease")]})  # a retried call
    last = _written(root, "pubmed26n0001", [2, 1], {"a@1": [_ent("pubmed:1", 0, 0, "gene"), _ent("pubmed:2", 1, 6, "disease")]})
    done = c.add(pa.Table.from_pylist([retried, last], schema=stream.WRITTEN))
    assert len(done) == 1 and c.duplicates == 1 and not c.incomplete()
    assert done[0].entities == {"a@1": {"gene": 1, "disease": 2}, "b@1": {"species": 1}}
    state = out.state()
    assert state.committed_runs() == [("pubmed", "pubmed26n0001", "r1")]
    assert state.current_label_sets() == [("pubmed", "pubmed26n0001", "a@1", "r1"), ("pubmed", "pubmed26n0001", "b@1", "r1")]
    rec = state.label_sets[("pubmed", "pubmed26n0001")]["a@1"]
    assert rec.model == "fp" and rec.label_set_hash == "ha" and rec.counts["per_label"] == {"gene": 1, "disease": 2}
    assert state.parse[("pubmed", "pubmed26n0001")].inputs[0]["md5"] == item.md5
    # the retried call's file is not in the table: every row exactly once
    ents = _table(root, "entities")
    assert sorted((r["label_set"], r["doc_id"], r["start"]) for r in ents.to_pylist()) == [
        ("a@1", "pubmed:1", 0), ("a@1", "pubmed:1", 5), ("a@1", "pubmed:2", 6), ("b@1", "pubmed:1", 0)]
    assert _table(root, "documents").num_rows == 1
    # rows after the commit are ignored (counted as duplicates)
    assert c.add(pa.Table.from_pylist([retried], schema=stream.WRITTEN)) == [] and c.duplicates == 2


def test_committer_rewrites_a_message_that_covers_some_micro_batches_twice(tmp_path):
    root = str(tmp_path / "out")
    unit = WorkUnit("pubmed", "pubmed26n0003", (InputFile("/x/pubmed26n0003.xml.gz", "pubmed", "pubmed26n0003", size=1),), ("a@1",), 1)
    c = Committer(Output(root), [unit], [BankInfo("a@1", "fp", ("gene",))], "r1")
    keys = {0: [("pubmed:1", 0, 0)], 1: [("pubmed:2", 1, 0)], 2: [("pubmed:3", 2, 0)]}
    a = _written(root, "pubmed26n0003", [0, 1], {"a@1": [_ent("pubmed:1", 0, 0, "gene"), _ent("pubmed:2", 1, 0, "gene")]}, keys)
    # a re-run parse task's blocks bundled differently: micro-batches 1 and 2 in one call
    b = _written(root, "pubmed26n0003", [1, 2], {"a@1": [_ent("pubmed:2", 1, 0, "gene"), _ent("pubmed:3", 2, 0, "gene")]}, keys)
    end = _end("pubmed26n0003", {"status": "committed", "error": None, "files": [], "members": [], "counts": {}, "timings": {}, "micro_batches": 3})
    done = c.add(pa.Table.from_pylist([a, b, end], schema=stream.WRITTEN))
    assert len(done) == 1 and c.rewritten == 1
    assert sorted(r["doc_id"] for r in _table(root, "entities").to_pylist()) == ["pubmed:1", "pubmed:2", "pubmed:3"]
    assert done[0].entities == {"a@1": {"gene": 3}}


def test_committer_commits_completed_units_together(tmp_path):
    root = str(tmp_path / "out")
    names = [f"pubmed26n00{i}0" for i in range(5)]
    units = [WorkUnit("pubmed", n, (InputFile(f"/x/{n}.xml.gz", "pubmed", n, size=1),), ("a@1",), 1) for n in names]
    out = Output(root)
    c = Committer(out, units, [BankInfo("a@1", "fp", ("gene",))], "r1", wait_s=3600, max_units=2)
    info = {"status": "committed", "error": None, "files": [], "members": [], "counts": {}, "timings": {}, "micro_batches": 0}
    assert c.add(pa.Table.from_pylist([_end(names[0], info)], schema=stream.WRITTEN)) == []  # waits for company
    assert out.state().records == ()
    done = c.add(pa.Table.from_pylist([_end(n, info) for n in names[1:4]], schema=stream.WRITTEN))
    assert [d.unit.input for d in done] == names[:4]  # 2 were enough: all ready ones go in one commit
    from deltalake import DeltaTable

    assert DeltaTable(f"{root}/commits").version() == 1  # created, then one Delta commit for four units
    assert c.add(pa.Table.from_pylist([_end(names[4], info)], schema=stream.WRITTEN)) == []
    assert [d.unit.input for d in c.flush()] == names[4:] and not c.incomplete()
    assert len(out.state().parse) == 5


def test_committer_adds_a_label_set_without_touching_the_others(tmp_path, sample_dir):
    item = identify(str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz"))
    root = str(tmp_path / "out")
    out = Output(root)
    _commit(out, [item], "pubmed26n0001", sets=("a@1",))
    c = Committer(out, [WorkUnit("pubmed", "pubmed26n0001", (item,), ("b@1",), None)], [BankInfo("a@1", "fp", ("x",)), BankInfo("b@1", "fp", ("y",))], "r2")
    info = {"status": "committed", "error": None, "files": [], "members": [], "counts": {"ner_passages": 0}, "timings": {}, "micro_batches": 0}
    assert len(c.add(pa.Table.from_pylist([_end("pubmed26n0001", info)], schema=stream.WRITTEN))) == 1
    state = out.state()
    sets = state.label_sets[("pubmed", "pubmed26n0001")]
    assert set(sets) == {"a@1", "b@1"} and sets["a@1"].run_id == "r0" and sets["b@1"].run_id == "r2"
    assert state.parse[("pubmed", "pubmed26n0001")].run_id == "r0"  # the parse commit is the earlier one


# -- tokenise + model stages as plain callables (tiny checkpoint, no Ray) ----------------------


def test_micro_batches_and_annotate_match_predict_in_order(tiny_checkpoint, sample_dir, tmp_path):
    from pipeline_helpers import TINY_THRESHOLD

    from biogliner.labels import load_label_set
    from biogliner.model import BiEncoder
    from biogliner.pipeline.banks import _override_threshold
    from biogliner.pipeline.stages.batching import micro_batches
    from biogliner.pipeline.stages.model import Annotate
    from biogliner.pipeline.stages.tokenize import Tokenize

    url = str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz")
    parsed = pa.concat_tables(parse_input(_unit(identify(url)), _params(tmp_path / "out", block_rows=1000)))
    assert parsed.column("kind").to_pylist()[-1] == stream.END
    batched = pa.concat_tables(micro_batches([parsed], Tokenize(str(tiny_checkpoint)).encode, 4))
    assert batched.schema == stream.BATCHED
    kinds = batched.column("kind").to_pylist()
    assert kinds[-1] == stream.END and set(kinds[:-1]) == {stream.BATCH} and len(kinds) > 3
    end_info = json.loads(batched.column("info")[batched.num_rows - 1].as_py())
    assert end_info == {**json.loads(parsed.column("info")[parsed.num_rows - 1].as_py()), "micro_batches": batched.num_rows - 1}
    assert batched.column("position").to_pylist()[:-1] == list(range(batched.num_rows - 1))  # micro-batch sequence numbers

    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    ls = _override_threshold(load_label_set("biomed"), TINY_THRESHOLD)
    bank_url = str(tmp_path / "bank.safetensors")
    model.embed_labels(ls).save(bank_url)
    root = str(tmp_path / "delta")
    annotate = Annotate(str(tiny_checkpoint), [bank_url], batch_size=4, output=root, output_storage_options=None, run_id="r1",
                        bank_ids=[ls.id], unit_sets={})
    out = annotate(batched)
    assert out.schema == stream.WRITTEN
    assert out.column("kind").to_pylist() == [stream.WRITTEN_KIND, stream.END]
    assert out.column("info").to_pylist()[-1] == batched.column("info").to_pylist()[-1]
    n_mb = batched.num_rows - 1
    assert out.column("mbs")[0].as_py() == list(range(n_mb)) and json.loads(out.column("info")[-1].as_py())["micro_batches"] == n_mb
    info = json.loads(out.column("info")[0].as_py())
    (f,) = info["files"].values()
    ents = pq.read_table(str(tmp_path / "delta" / "entities" / f["path"]))
    assert f["path"].startswith("source=pubmed/input=pubmed26n0001/part-")
    # calls of other sizes (rows per call) give the same rows, scores included
    parts = [annotate(batched.slice(0, 2)), annotate(batched.slice(2, 1)), annotate(batched.slice(3))]
    split = []
    for part in parts:
        for kind, info_ in zip(part.column("kind").to_pylist(), part.column("info").to_pylist()):
            for g in json.loads(info_)["files"].values() if kind == stream.WRITTEN_KIND else []:
                split.append(pq.read_table(str(tmp_path / "delta" / "entities" / g["path"])))
    keys = [("doc_id", "ascending"), ("position", "ascending"), ("passage_index", "ascending"), ("start", "ascending"), ("end", "ascending"), ("label", "ascending")]
    assert pa.concat_tables(split).sort_by(keys).equals(ents.sort_by(keys))

    text_of = {(r["position"], r["passage_index"]): r["text"] for r in parsed.to_pylist()[:-1]}
    keys_in_order = [k for ks in batched.column("passages").to_pylist()[:-1] for k in ks]
    assert sorted(keys_in_order, key=repr) == sorted(parsed.select(["position", "doc_id", "version", "passage_index"]).to_pylist()[:-1], key=repr)
    texts = [text_of[(k["position"], k["passage_index"])] for k in keys_in_order]
    expected = model.predict(texts, [model.embed_labels(ls)], batch_size=4)
    want = sorted(
        (k["doc_id"], k["position"], k["passage_index"], e.start, e.end, e.label)
        for k, exp in zip(keys_in_order, expected)
        for e in exp[0]
    )
    got = sorted((r["doc_id"], r["position"], r["passage_index"], r["start"], r["end"], r["label"]) for r in ents.to_pylist())
    assert got == want and len(got) > 0
    for r in ents.to_pylist():
        assert text_of[(r["position"], r["passage_index"])][r["start"] : r["end"]] == r["text"]
    assert info["per_label"][ls.id] == dict(Counter(r["label"] for r in ents.to_pylist()))


def test_stages_name_the_missing_columns():
    from biogliner.pipeline.stages.batching import micro_batches

    no_text = pa.table({f.name: pa.array([], f.type) for f in stream.KEY_FIELDS + [stream.INFO_FIELD]})
    with pytest.raises(KeyError, match="micro_batches: input batch lacks columns \\['text'\\]"):
        list(micro_batches([no_text], lambda texts: [], 4))


def test_job_help_needs_neither_ray_nor_torch():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "jobs/annotate.py", "--help"], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--num-model-workers" in r.stdout and "--storage-options" in r.stdout
    probe = "import sys, biogliner.cli.annotate, biogliner.pipeline.args, biogliner.pipeline.config; " \
            "print(sorted(m for m in ('ray', 'torch', 'transformers') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
