"""Pipeline stages as plain callables (no Ray): config, plan, parse, commit."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import corrupt_shard_bytes

from biogliner.pipeline import stream
from biogliner.pipeline.args import add_arguments, config_from_args
from biogliner.pipeline.commit import BankInfo, Committer
from biogliner.pipeline.config import AnnotateConfig, ConfigError
from biogliner.pipeline.faults import parse_fault_spec
from biogliner.pipeline.parse import ParseParams, parse_input
from biogliner.pipeline.plan import expand_inputs, identify, make_plan
from biogliner.schema import Deletion, Document, Skip
from biogliner.sources import iter_events
from biogliner.store.manifest import LabelSetCommit, ManifestEntry, ParseCommit, Store

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


def test_fault_spec():
    assert parse_fault_spec("driver.after_commit=2,ner.call=1") == {"driver.after_commit": 2, "ner.call": 1}
    with pytest.raises(ConfigError):
        parse_fault_spec("driver.after_commit=0")


# -- plan -------------------------------------------------------------------------------------


def _entry(f, status="committed", sets=("biomed@1",), md5=None):
    return ManifestEntry(
        input=f.input, source=f.source, url=f.url, status=status, run_id="r0", parse=ParseCommit(run_id="r0"),
        size=f.size, etag=f.etag, md5=md5 or f.md5,
        label_sets={s: LabelSetCommit(run_id="r0", model="fp") for s in sets},
    )


def test_plan_skips_only_what_is_committed_from_the_same_bytes(sample_dir, tmp_path):
    urls = expand_inputs((str(sample_dir),))
    assert not any(u.endswith((".md5", ".json")) for u in urls)
    files = {identify(u).input: identify(u) for u in urls}
    assert {f.source for f in files.values()} == {"pubmed", "pmc"}
    assert files["pubmed26n0001"].md5 and files["pubmed26n0001"].source == "pubmed"
    assert files["PMC0000001.1"].source == "pmc"
    store = Store(str(tmp_path / "out"))
    plan = make_plan((str(sample_dir),), store, ["biomed@1"])
    assert len(plan.todo) == len(urls) and not plan.done
    assert all(f.label_sets == ("biomed@1",) for f in plan.todo)

    store.commit(_entry(files["pubmed26n0001"]))
    store.commit(_entry(files["pubmed26n0002"], md5="0" * 32))  # other bytes: redo
    store.commit(_entry(files["PMC0000001.1"], status="failed"))  # failed: retry
    store.commit(_entry(files["naegleria-case"], sets=("core@1",)))  # missing set: only that one
    plan = make_plan((str(sample_dir),), store, ["biomed@1", "core@1"])
    todo = {f.input: f.label_sets for f in plan.todo}
    assert todo == {
        "pubmed26n0001": ("core@1",),
        "pubmed26n0002": ("biomed@1", "core@1"),
        "PMC0000001.1": ("biomed@1", "core@1"),
        "naegleria-case": ("biomed@1",),
    }
    plan = make_plan((str(sample_dir),), store, ["biomed@1"])
    assert [f.input for f in plan.done] == ["pubmed26n0001"]


def test_plan_rejects_an_empty_glob(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input"):
        expand_inputs((str(tmp_path / "*.xml.gz"),))


# -- parse ------------------------------------------------------------------------------------


def _params(root, **kw):
    return ParseParams(output=str(root), storage_options={}, run_id="r1", **kw)


def _events(url):
    return list(iter_events(url))


def test_parse_input_streams_blocks_and_writes_the_parse_tables(sample_dir, tmp_path):
    url = str(sample_dir / "pubmed" / "pubmed26n0002.xml.gz")
    item = identify(url)
    events = _events(url)
    docs = [e for e in events if isinstance(e, Document)]
    passages = [(d.position, i, p.text) for d in docs for i, p in enumerate(d.passages)]
    nonblank = [p for p in passages if p[2].strip()]
    blocks = list(parse_input(item, _params(tmp_path / "out", block_rows=3)))

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
    documents = pq.read_table(root / info["files"]["documents"][0])
    assert documents.schema.metadata[b"biogliner.schema_version"] == b"1"
    assert documents.column("doc_id").to_pylist() == [d.doc_id for d in docs]
    assert documents.column("n_passages").to_pylist() == [len(d.passages) for d in docs]
    ptab = pq.read_table(root / info["files"]["passages"][0])
    assert ptab.column("text").to_pylist() == [p[2] for p in passages]
    dtab = pq.read_table(root / info["files"]["deletions"][0])
    assert dtab.column("doc_id").to_pylist() == [e.doc_id for e in events if isinstance(e, Deletion)]
    assert pq.ParquetFile(root / info["files"]["documents"][0]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_parse_input_records_a_corrupt_file_and_keeps_what_came_before(tmp_path):
    bad = tmp_path / "in" / "pubmed26n0009.xml.gz"
    bad.parent.mkdir()
    bad.write_bytes(corrupt_shard_bytes())
    good_before = [e for e in _events_until_error(str(bad)) if isinstance(e, Document)]
    assert good_before, "the cut must come after some good records"
    blocks = list(parse_input(identify(str(bad)), _params(tmp_path / "out")))
    info = json.loads(blocks[-1].column("info")[0].as_py())
    assert info["status"] == "failed" and "pubmed26n0009" in info["error"]
    errors = pq.read_table(tmp_path / "out" / info["files"]["errors"][0]).to_pylist()
    file_errors = [e for e in errors if e["kind"] == "file_error"]
    assert len(file_errors) == 1 and file_errors[0]["source_file"] == bad.name
    assert file_errors[0]["position"] == good_before[-1].position
    documents = pq.read_table(tmp_path / "out" / info["files"]["documents"][0])
    assert documents.num_rows == len(good_before) == info["counts"]["documents"]


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
        blocks = list(parse_input(identify(url), _params(tmp_path / "out")))
        info = json.loads(blocks[-1].column("info")[0].as_py())
        assert info["counts"]["skips"] == dict(skips)
        assert info["counts"]["errors"] == sum(skips.values())


# -- commit -----------------------------------------------------------------------------------


def _annotated(rows):
    base = {"kind": stream.PASSAGE, "source": "pubmed", "input": "pubmed26n0001", "position": None, "doc_id": None,
            "version": None, "passage_index": None, "entities": None, "info": None}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=stream.ANNOTATED)


def _ent(bank, start, end, label, score=0.9):
    return {"bank": bank, "start": start, "end": end, "text": "x" * (end - start), "label": label, "score": score}


def test_committer_waits_for_every_passage_drops_duplicates_and_commits_last(tmp_path, sample_dir):
    item = identify(str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz"))
    from dataclasses import replace

    item = replace(item, label_sets=("a@1", "b@1"))
    store = Store(str(tmp_path / "out"))
    banks = [BankInfo("a@1", "fp", ("gene", "disease")), BankInfo("b@1", "fp", ("species",))]
    c = Committer(store, [item], banks, "r1")
    end_info = {"status": "committed", "error": None, "files": {"documents": ["documents/x.parquet"]},
                "counts": {"documents": 2, "ner_passages": 3}, "timings": {"parse_s": 0.1}}
    p = lambda pos, i, ents: {"position": pos, "doc_id": f"pubmed:{pos}", "version": 1, "passage_index": i, "entities": ents}  # noqa: E731
    assert c.add(_annotated([p(1, 0, [_ent(0, 5, 9, "disease"), _ent(1, 0, 3, "species")])])) == []
    assert c.add(_annotated([{"kind": stream.END, "info": json.dumps(end_info)}])) == []  # end before the last rows
    assert store.read_entry("pubmed", "pubmed26n0001") is None
    # a duplicate (retried task) and the rest, out of order
    assert c.add(_annotated([p(1, 0, [_ent(0, 5, 9, "disease"), _ent(1, 0, 3, "species")]), p(2, 0, [])])) == []
    done = c.add(_annotated([p(0, 1, [_ent(0, 0, 4, "gene"), _ent(0, 6, 8, "disease")])]))
    assert len(done) == 1 and c.duplicates == 1 and not c.incomplete()
    entry = store.read_entry("pubmed", "pubmed26n0001")
    assert entry.status == "committed" and entry.parse.files == end_info["files"]
    assert set(entry.label_sets) == {"a@1", "b@1"}
    assert entry.label_sets["a@1"].counts["per_label"] == {"gene": 1, "disease": 2}
    assert done[0].entities == {"a@1": {"gene": 1, "disease": 2}, "b@1": {"species": 1}}
    a = pq.read_table(store.url(entry.label_sets["a@1"].files[0]))
    # sorted by (position, passage, start): deterministic whatever the arrival order
    assert [(r["doc_id"], r["start"], r["label"]) for r in a.to_pylist()] == [
        ("pubmed:0", 0, "gene"), ("pubmed:0", 6, "disease"), ("pubmed:1", 5, "disease")]
    assert set(a.column("label_set").to_pylist()) == {"a@1"} and set(a.column("model").to_pylist()) == {"fp"}
    # rows after the commit are ignored (counted as duplicates)
    assert c.add(_annotated([p(2, 0, [])])) == [] and c.duplicates == 2


def test_committer_keeps_other_label_sets_when_adding_one(tmp_path, sample_dir):
    from dataclasses import replace

    item = identify(str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz"))
    store = Store(str(tmp_path / "out"))
    store.commit(_entry(item, sets=("a@1",)))
    c = Committer(store, [replace(item, label_sets=("b@1",))], [BankInfo("a@1", "fp", ("x",)), BankInfo("b@1", "fp", ("y",))], "r2")
    info = {"status": "committed", "error": None, "files": {}, "counts": {"ner_passages": 0}, "timings": {}}
    assert len(c.add(_annotated([{"kind": stream.END, "info": json.dumps(info)}]))) == 1
    entry = store.read_entry(item.source, item.input)
    assert set(entry.label_sets) == {"a@1", "b@1"}
    assert entry.label_sets["a@1"].run_id == "r0" and entry.label_sets["b@1"].run_id == "r2"


# -- tokenise + model stages as plain callables (tiny checkpoint, no Ray) ----------------------


def test_micro_batches_and_annotate_match_predict_in_order(tiny_checkpoint, sample_dir, tmp_path):
    from pipeline_helpers import TINY_THRESHOLD

    from biogliner.labels import load_label_set
    from biogliner.model import BiEncoder
    from biogliner.pipeline.banks import _override_threshold
    from biogliner.pipeline.batching import micro_batches
    from biogliner.pipeline.ner import Annotate
    from biogliner.pipeline.tokenize import Tokenize

    url = str(sample_dir / "pubmed" / "pubmed26n0001.xml.gz")
    parsed = pa.concat_tables(parse_input(identify(url), _params(tmp_path / "out", block_rows=1000)))
    assert parsed.column("kind").to_pylist()[-1] == stream.END
    batched = pa.concat_tables(micro_batches([parsed], Tokenize(str(tiny_checkpoint)).encode, 4))
    assert batched.schema == stream.BATCHED
    kinds = batched.column("kind").to_pylist()
    assert kinds[-1] == stream.END and set(kinds[:-1]) == {stream.BATCH} and len(kinds) > 3
    assert batched.column("info")[batched.num_rows - 1].as_py() == parsed.column("info")[parsed.num_rows - 1].as_py()

    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    ls = _override_threshold(load_label_set("biomed"), TINY_THRESHOLD)
    bank_url = str(tmp_path / "bank.safetensors")
    model.embed_labels(ls).save(bank_url)
    annotate = Annotate(str(tiny_checkpoint), [bank_url], batch_size=4)
    out = annotate(batched)
    assert out.schema == stream.ANNOTATED
    assert out.column("kind").to_pylist() == [stream.PASSAGE] * (parsed.num_rows - 1) + [stream.END]
    assert out.column("info").to_pylist()[-1] == parsed.column("info").to_pylist()[-1]
    # every passage exactly once, in the micro-batches' order (longest first in each window)
    keys = ["position", "doc_id", "version", "passage_index"]
    got_keys = out.select(keys).to_pylist()[:-1]
    assert got_keys == [k for ks in batched.column("passages").to_pylist()[:-1] for k in ks]
    assert sorted(got_keys, key=repr) == sorted(parsed.select(keys).to_pylist()[:-1], key=repr)

    # calls of other sizes (rows per call) give the same rows, scores included
    split = pa.concat_tables([annotate(batched.slice(0, 2)), annotate(batched.slice(2, 1)), annotate(batched.slice(3))])
    assert split.equals(out)

    text_of = {(r["position"], r["passage_index"]): r["text"] for r in parsed.to_pylist()[:-1]}
    texts = [text_of[(k["position"], k["passage_index"])] for k in got_keys]
    expected = model.predict(texts, [model.embed_labels(ls)], batch_size=4)
    n = 0
    for text, ents, exp in zip(texts, out.column("entities").to_pylist()[:-1], expected):
        assert [(e["start"], e["end"], e["label"]) for e in ents] == [(e.start, e.end, e.label) for e in exp[0]]
        for e in ents:
            assert text[e["start"] : e["end"]] == e["text"] and e["bank"] == 0
        n += len(ents)
    assert n > 0


def test_stages_name_the_missing_columns():
    from biogliner.pipeline.batching import micro_batches

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
