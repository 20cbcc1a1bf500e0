"""End to end on s3:// (moto on 127.0.0.1) with the tiny random checkpoint.

One clean run is the reference; reruns, killed-and-completed runs (kill -9 of the driver at two
points, in subprocesses), and a run with a dead model actor and a lost parse worker must give
exactly its tables (whole tables compared, sorted, run ids aside: they differ by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pipeline_helpers import CREDS, TINY_THRESHOLD, corrupt_shard_bytes, new_bucket, read_tables, upload_dir

from biogliner.pipeline.config import AnnotateConfig
from biogliner.pipeline.job import annotate
from biogliner.schema import Deletion, Document
from biogliner.sources import iter_events, sample_corpus_path
from biogliner.testing.synthetic import make_pubmed_shard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "pipeline-e2e")


@pytest.fixture(scope="module")
def inputs(bucket, tmp_path_factory):
    """The sample corpus plus two generated PubMed shards, uploaded to the bucket."""
    local = tmp_path_factory.mktemp("inputs")
    import shutil

    shutil.copytree(sample_corpus_path(), local / "in")
    (local / "in" / "pubmed" / "pubmed26n0100.xml.gz").write_bytes(make_pubmed_shard(60, first_pmid=51_000_000))
    (local / "in" / "pubmed" / "pubmed26n0101.xml.gz").write_bytes(make_pubmed_shard(45, first_pmid=52_000_000))
    upload_dir(local / "in", f"{bucket}/in")
    return {"local": local / "in", "url": f"{bucket}/in"}


def _config(inputs, out, tiny_checkpoint, **kw) -> AnnotateConfig:
    return AnnotateConfig(
        inputs=(inputs["url"],),
        output=out,
        model=str(tiny_checkpoint),
        labels=("biomed",),
        threshold=TINY_THRESHOLD,
        storage_options=CREDS,
        progress="none",
        rows_per_call=16,
        block_rows=24,
        **kw,
    )


@pytest.fixture(scope="module")
def clean(s3_server, ray_session, inputs, bucket, tiny_checkpoint):
    """The reference: one uninterrupted run."""
    out = f"{bucket}/clean"
    summary = annotate(_config(inputs, out, tiny_checkpoint))
    return {"out": out, "summary": summary, "tables": read_tables(out, CREDS)}


def _reader_counts(local: Path):
    docs = passages = deletions = 0
    for p in sorted(local.rglob("*")):
        if p.is_file() and not p.name.endswith((".md5", ".json")):
            for e in iter_events(str(p)):
                if isinstance(e, Document):
                    docs += 1
                    passages += len(e.passages)
                elif isinstance(e, Deletion):
                    deletions += 1
    return docs, passages, deletions


def test_clean_run_matches_the_readers(clean, inputs):
    s, t = clean["summary"], clean["tables"]
    assert s.ok and s.files_failed == 0 and s.files_committed == s.files_total == 6
    docs, passages, deletions = _reader_counts(inputs["local"])
    assert len(t["documents"]) == s.documents == docs
    assert len(t["passages"]) == s.passages == passages
    assert len(t["deletions"]) == s.deletions == deletions == 2
    # 5 units (4 PubMed files, the 2 PMC files in one unit): a parse commit and a label-set commit each
    parse = [c for c in t["commits"] if c[0] == "parse"]
    assert len(parse) == 5 and len(t["commits"]) == 10 and {c[3] for c in t["commits"]} == {"committed"}
    assert sum(len(c[6]) for c in parse) == 6
    # one partition per unit
    parts = {p for p, _ in t["documents"]}
    assert parts == {f"source={c[1]}/input={c[2]}" for c in parse}
    # no duplicate document or passage
    doc_keys = [(p, dict(r)["doc_id"]) for p, r in t["documents"]]
    assert len(doc_keys) == len(set(doc_keys))


def test_every_engine_reads_the_same_tables_on_s3(clean, capsysbinary):
    """deltalake and polars read the Delta tables on s3:// with the counts `biogliner sql` gives;
    every table (history, commits, maintained current tables) stays at protocol reader 1 / writer 2."""
    import polars as pl
    from deltalake import DeltaTable

    from biogliner.cli import main
    from biogliner.store.current import CURRENT_TABLES
    from biogliner.store.delta import delta_storage_options

    out = clean["out"]
    opts = delta_storage_options(out, CREDS)
    for table in ("documents", "passages", "entities", "deletions", "commits", *CURRENT_TABLES):
        dt = DeltaTable(f"{out}/{table}", storage_options=opts)
        p = dt.protocol()
        assert (p.min_reader_version, p.min_writer_version) == (1, 2), table
        n_delta = dt.to_pyarrow_table().num_rows
        n_polars = pl.scan_delta(f"{out}/{table}", storage_options=opts).select(pl.len()).collect().item()
        assert main(["sql", "--output", out, "--storage-options", json.dumps(CREDS), "--format", "csv", f"SELECT count(*) AS n FROM {table}"]) == 0
        n_sql = int(capsysbinary.readouterr().out.decode().split()[-1])
        assert n_delta == n_polars == n_sql > 0, table


def test_entity_offsets_slice_the_passage_text(clean):
    t = clean["tables"]
    docs = {(part, dict(r)["doc_id"], dict(r)["position"]) for part, r in t["documents"]}
    texts = {}
    for part, row in t["passages"]:
        r = dict(row)
        assert (part, r["doc_id"], r["position"]) in docs  # the document's position in its file
        texts[(part, r["doc_id"], r["version"], r["position"], r["passage_index"])] = r["text"]
    ents = [(part, dict(row)) for part, row in t["entities"]]
    assert len(ents) > 20, "the threshold must let the tiny model find entities"
    labels = Counter(e["label"] for _, e in ents)
    assert len(labels) >= 3
    for part, e in ents:
        text = texts[(part, e["doc_id"], e["version"], e["position"], e["passage_index"])]
        assert text[e["start"] : e["end"]] == e["text"]
        assert e["score"] > TINY_THRESHOLD and e["label_set"] == f"biomed@1-t{TINY_THRESHOLD:g}"
    assert sum(sum(v.values()) for v in clean["summary"].entities.values()) == len(ents)
    assert len({e["model"] for _, e in ents}) == 1


def _objects(url):
    from biogliner import io as bio

    fs, root = bio.filesystem(url, CREDS)
    fs.invalidate_cache()
    return {p: fs.info(p)["ETag"] for p in fs.find(root) if "/_runs/" not in p}


def orphans(url) -> list[str]:
    """Data files under the table folders that no Delta log names (a killed run's, a retried task's)."""
    from biogliner import io as bio
    from biogliner.schema import TABLES
    from biogliner.store.output import Output

    out = Output(url, CREDS)
    fs, root = bio.filesystem(url, CREDS)
    fs.invalidate_cache()
    live = {u.split("://", 1)[-1] for t in TABLES for u in out.files(t)}
    found = [p for t in TABLES for p in (fs.find(f"{root}/{t}") if fs.exists(f"{root}/{t}") else []) if p.endswith(".parquet") and "/_delta_log/" not in p]
    return sorted(p for p in found if p not in live)


def test_rerun_is_a_noop(clean, inputs, tiny_checkpoint):
    before = _objects(clean["out"])

    def no_ray():
        raise AssertionError("a finished job must not need Ray, nor the model")

    summary = annotate(_config(inputs, clean["out"], tiny_checkpoint), ensure_ray=no_ray)
    assert summary.ok and summary.files_skipped == 6 and summary.files_committed == 0 and summary.status == "nothing_to_do"
    assert _objects(clean["out"]) == before
    assert read_tables(clean["out"], CREDS) == clean["tables"]


def _cli(args, *, env_extra=None, cwd=None, timeout=240):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "biogliner", "annotate", *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _cli_args(inputs, out, tiny_checkpoint):
    return ["--input", inputs["url"], "--output", out, "--model", str(tiny_checkpoint), "--threshold", str(TINY_THRESHOLD),
            "--storage-options", json.dumps(CREDS), "--progress", "none", "--rows-per-call", "16", "--block-rows", "24",
            "--commit-wait", "0"]


def test_killed_twice_then_completed_despite_a_dead_actor_equals_a_clean_run(clean, inputs, bucket, tiny_checkpoint, ray_session, tmp_path):
    """kill -9 of the driver after 2 commits, then mid-write (entity files written, not committed);
    the completing run loses a model actor (it dies at its 2nd call) and a parse worker (it dies
    after writing its tables): Ray restarts/retries them, and the tables equal the clean run's.
    (One completing run serves both scenarios: each run costs a model load in a fresh actor.)"""
    from biogliner.store.output import Output

    out = f"{bucket}/killed"
    args = _cli_args(inputs, out, tiny_checkpoint)
    # connect the subprocess drivers to the session's Ray (saves a Ray start per run)
    env = {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}

    def committed():
        return len(Output(out, CREDS).state().parse)

    first = _cli(args + ["--fault", "driver.after_commit=2"], env_extra=env)
    assert first.returncode == 137, first.stderr[-3000:]
    n1 = committed()
    assert 2 <= n1 < 5  # two commits (of one or more completed units each), then killed

    second = _cli(args + ["--fault", "driver.before_commit=1"], env_extra=env)  # dies with complete units unwritten to the log
    assert second.returncode == 137, second.stderr[-3000:]
    assert committed() == n1
    assert orphans(out), "the killed run left data files that no Delta log names"

    files_before = sum(len(r.inputs) for r in Output(out, CREDS).state().parse.values())
    faults = {**env, "BIOGLINER_FAULT": "ner.call=2,parse.after_write=1", "BIOGLINER_FAULT_DIR": str(tmp_path)}
    third = _cli(args, env_extra=faults)
    assert third.returncode == 0, third.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ner.call.actor.fired", "parse.after_write.task.fired"]
    assert f"{6 - files_before} committed, {files_before} already done" in third.stdout
    assert read_tables(out, CREDS) == clean["tables"]


def test_corrupt_shard_is_recorded_and_the_others_commit(inputs, bucket, tiny_checkpoint, ray_session, tmp_path):
    from biogliner import io as bio
    from biogliner.cli import main
    from biogliner.store.output import Output

    fs, path = bio.filesystem(f"{bucket}/corrupt-in/pubmed26n0900.xml.gz")
    fs.pipe_file(path, corrupt_shard_bytes())
    fs.pipe_file(path.replace("0900", "0901"), make_pubmed_shard(12, first_pmid=53_000_000))
    # two label sets in one encoder pass: a pre-embedded bank file and a YAML file
    from biogliner.labels import load_label_set
    from biogliner.model import BiEncoder

    bank = tmp_path / "core.safetensors"
    BiEncoder.load(str(tiny_checkpoint), device="cpu").embed_labels(load_label_set("core")).save(str(bank))
    yaml = tmp_path / "mine.yaml"
    yaml.write_text('name: mine\nversion: "2"\nlabels:\n  - enzyme\n  - name: organ\n    prompt: organ or tissue\n')
    out = f"{bucket}/corrupt-out"
    args = _cli_args({"url": f"{bucket}/corrupt-in"}, out, tiny_checkpoint) + ["--labels", str(bank), "--labels", str(yaml)]
    rc = main(["annotate", *args])
    assert rc == 1
    state = Output(out, CREDS).state()
    entries = {i: r for (s_, i), r in state.parse.items()}
    assert entries["pubmed26n0900"].status == "failed" and "pubmed26n0900" in entries["pubmed26n0900"].error
    assert entries["pubmed26n0901"].status == "committed"
    sets = {"core@1-t0.515", "mine@2-t0.515"}
    assert set(state.label_sets[("pubmed", "pubmed26n0901")]) == set(state.label_sets[("pubmed", "pubmed26n0900")]) == sets
    t = read_tables(out, CREDS)
    ents = [dict(r) for _, r in t["entities"]]
    assert {e["label_set"] for e in ents} == sets
    assert {e["label"] for e in ents if e["label_set"] == "mine@2-t0.515"} <= {"enzyme", "organ"}
    errors = [dict(r) for p, r in t["errors"] if p.endswith("input=pubmed26n0900")]
    assert [e["kind"] for e in errors] == ["file_error"]
    # what was read before the cut is kept and counted
    assert entries["pubmed26n0900"].counts["documents"] == sum(1 for p, _ in t["documents"] if p.endswith("pubmed26n0900")) > 0
    fs, root = bio.filesystem(out, CREDS)
    runs = [p for p in fs.find(root + "/_runs") if p.endswith(".json")]
    summary = json.loads(fs.cat_file(runs[0]))
    assert summary["status"] == "failed" and summary["files"]["failed"] == 1 and summary["files"]["committed"] == 1


def test_readme_main_command_writes_the_tables(tiny_checkpoint, tmp_path):
    """`biogliner annotate` with no input/output (README): sample corpus -> ./biogliner-output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
    env["BIOGLINER_MODEL"] = str(tiny_checkpoint)
    r = subprocess.run(
        [sys.executable, "-m", "biogliner", "annotate", "--threshold", str(TINY_THRESHOLD), "--progress", "none"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    t = read_tables(str(tmp_path / "biogliner-output"))
    sample_files = [p for p in sample_corpus_path().rglob("*") if p.is_file() and not p.name.endswith((".md5", ".json"))]
    assert sum(len(c[6]) for c in t["commits"] if c[0] == "parse") == len(sample_files)
    assert len(t["documents"]) == _reader_counts(sample_corpus_path())[0]
    assert t["entities"]
