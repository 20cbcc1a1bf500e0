"""What a label set's entities were made with is part of what is committed (issue 10, 3 and 5).

Model A then model B into one output is refused before Ray (exit status 3) naming both
fingerprints; ``--reannotate`` replaces the label set's entities (``current_entities``: only B's
rows) while the ``entities`` history keeps both; a label set whose content changed under the same
``name@version`` is refused too; an unreachable model fails before Ray with the offline hint, and
every command that takes ``--model`` honours ``BIOGLINER_MODEL``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import TINY_THRESHOLD

from biogliner.pipeline.config import AnnotateConfig
from biogliner.pipeline.job import annotate
from biogliner.pipeline.plan import CommittedWithOtherModel
from biogliner.sources import sample_corpus_path

LABELS_YAML = """name: tiny
version: "1"
threshold: {threshold}
labels:
  - name: gene
    prompt: {prompt}
  - disease
  - chemical
"""


def _no_ray():
    raise AssertionError("Ray was started: the check must come before it")


@pytest.fixture(scope="module")
def model_b(tmp_path_factory) -> Path:
    from biogliner.testing.random_checkpoint import build_random_checkpoint

    out = tmp_path_factory.mktemp("ckpt-b") / "tiny-bi-b"
    build_random_checkpoint(out, seed=1)
    return out


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("labels") / "tiny.yaml"
    p.write_text(LABELS_YAML.format(threshold=TINY_THRESHOLD, prompt="gene or protein"))
    return p


def _fingerprint(path: Path) -> str:
    from biogliner.pipeline.driver_model import DriverModel

    return DriverModel(str(path)).fingerprint()


def _config(out: Path, model: Path, labels: Path, *inputs: str, **kw) -> AnnotateConfig:
    return AnnotateConfig(
        inputs=tuple(inputs) or (str(sample_corpus_path()),),
        output=str(out),
        model=str(model),
        labels=(str(labels),),
        progress="none",
        **kw,
    )


def test_driver_fingerprint_equals_the_loaded_models(tiny_checkpoint, model_b):
    """The cheap fingerprint (config + weights, no network built) is the model's own."""
    from biogliner.model import BiEncoder

    a, b = _fingerprint(tiny_checkpoint), _fingerprint(model_b)
    assert a == BiEncoder.load(str(tiny_checkpoint), device="cpu").fingerprint
    assert b == BiEncoder.load(str(model_b), device="cpu").fingerprint
    assert a != b


@pytest.fixture(scope="module")
def after_a(ray_session, tiny_checkpoint, labels_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "out"
    summary = annotate(_config(out, tiny_checkpoint, labels_file))
    assert summary.ok, summary.render()
    return out


def _current_and_history(out: Path):
    from biogliner.store.views import connect

    con = connect(str(out))
    current = con.execute("SELECT model, count(*) FROM current_entities WHERE label_set = 'tiny@1' GROUP BY model").fetchall()
    history = con.execute("SELECT model, count(*) FROM entities WHERE label_set = 'tiny@1' GROUP BY model").fetchall()
    # every entities commit of the label set, and whether it is its unit's current one (highest version)
    listing = con.execute(
        "SELECT model, version = max(version) OVER (PARTITION BY unit_id) AS current, count(*) OVER (PARTITION BY model, version) "
        "FROM commits WHERE kind = 'entities' AND label_set = 'tiny@1'"
    ).fetchall()
    return dict(current), dict(history), {(m, c): n for m, c, n in listing}


def _commits(out: Path) -> list:
    from biogliner.store.output import Output

    return Output(str(out)).commits_table().to_pylist()


def test_model_b_after_model_a_is_refused_before_ray(after_a, tiny_checkpoint, model_b, labels_file):
    before = _commits(after_a)
    with pytest.raises(CommittedWithOtherModel) as err:
        annotate(_config(after_a, model_b, labels_file), ensure_ray=_no_ray)
    msg = str(err.value)
    assert _fingerprint(tiny_checkpoint) in msg and _fingerprint(model_b) in msg
    assert "--output" in msg and "version" in msg and "--reannotate" in msg and "tiny@1" in msg
    assert _commits(after_a) == before  # nothing committed


def test_cli_exit_status_3_before_ray(after_a, model_b, labels_file):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "BIOGLINER_MODEL"))}
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "biogliner", "annotate", "--output", str(after_a), "--model", str(model_b),
         "--labels", str(labels_file), "--progress", "none"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 3, r.stderr[-3000:]
    assert _fingerprint(model_b) in r.stderr and "--reannotate" in r.stderr
    assert "starting a local Ray" not in r.stderr, r.stderr[-3000:]
    assert time.monotonic() - t0 < 60


def test_changed_label_set_content_under_the_same_version_is_refused(after_a, tiny_checkpoint, tmp_path):
    changed = tmp_path / "tiny.yaml"  # same name@version, another prompt
    changed.write_text(LABELS_YAML.format(threshold=TINY_THRESHOLD, prompt="gene, protein or transcript"))
    with pytest.raises(CommittedWithOtherModel, match="tiny@1") as err:
        annotate(_config(after_a, tiny_checkpoint, changed), ensure_ray=_no_ray)
    from biogliner.labels import load_label_set

    assert load_label_set(str(changed)).digest in str(err.value)
    # same content spelled another way (a label's threshold equal to the set's default) is NOT a change
    same = tmp_path / "same.yaml"
    same.write_text(LABELS_YAML.format(threshold=TINY_THRESHOLD, prompt="gene or protein").replace("  - disease", f"  - name: disease\n    threshold: {TINY_THRESHOLD}"))
    summary = annotate(_config(after_a, tiny_checkpoint, same), ensure_ray=_no_ray)
    assert summary.files_skipped == summary.files_total > 0


def test_reannotate_only_covers_this_runs_inputs(after_a, model_b, labels_file):
    one = str(sample_corpus_path() / "pubmed" / "pubmed26n0001.xml.gz")
    with pytest.raises(CommittedWithOtherModel, match="add them to --input") as err:
        annotate(_config(after_a, model_b, labels_file, one, reannotate=True), ensure_ray=_no_ray)
    assert "pubmed26n0002" in str(err.value)


def test_reannotate_replaces_current_and_keeps_history(after_a, tiny_checkpoint, model_b, labels_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(after_a, out)  # the other tests keep model A's output
    fa, fb = _fingerprint(tiny_checkpoint), _fingerprint(model_b)
    current, before, _ = _current_and_history(out)
    assert set(current) == {fa} and current[fa] > 0

    summary = annotate(_config(out, model_b, labels_file, reannotate=True))
    assert summary.ok, summary.render()
    current, history, listing = _current_and_history(out)
    assert set(current) == {fb} and current[fb] > 0  # never a mix of models for one label set
    assert set(history) == {fa, fb} and history[fa] == before[fa]  # A's rows all kept as history
    assert history[fb] >= current[fb]  # (history also holds entities of superseded document versions)
    from biogliner.store.output import Output

    n = len(Output(str(out)).state().parse)  # every unit: B's commit (version 2) is current, A's (version 1) is history
    assert n > 0 and listing == {(fb, True): n, (fa, False): n}

    # the SQL script for other engines (here run by DuckDB itself) resolves current_entities the same way
    import duckdb

    from biogliner.store.views import snapshot, views_sql

    con = duckdb.connect()
    con.execute(views_sql(snapshot(Output(str(out))), "duckdb"))
    assert dict(con.execute("SELECT model, count(*) FROM current_entities WHERE label_set = 'tiny@1' GROUP BY model").fetchall()) == current
    assert dict(con.execute("SELECT model, count(*) FROM entities WHERE label_set = 'tiny@1' GROUP BY model").fetchall()) == history
    # the maintained current table (refreshed at the end of the run) holds B's rows only, as the view
    from deltalake import DeltaTable

    maintained = DeltaTable(str(out / "current_entities")).to_pyarrow_table(filters=[("label_set", "=", "tiny@1")])
    assert dict(__import__("collections").Counter(maintained.column("model").to_pylist())) == current
    # the parse tables were not written again: only entities were committed (version 2)
    assert {r.version for r in Output(str(out)).state().parse.values()} == {1}
    # a rerun of model B is a no-op; model A is now the one refused
    again = annotate(_config(out, model_b, labels_file), ensure_ray=_no_ray)
    assert again.files_skipped == again.files_total
    with pytest.raises(CommittedWithOtherModel):
        annotate(_config(out, tiny_checkpoint, labels_file), ensure_ray=_no_ray)


def _cli(args: list[str], env_model: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "BIOGLINER_MODEL"))}
    env.update(BIOGLINER_MODEL=env_model, HF_HUB_OFFLINE="1")  # the hub is unreachable: fail at once
    return subprocess.run([sys.executable, "-m", "biogliner", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_unreachable_hub_model_fails_before_ray_with_the_offline_hint(tmp_path):
    t0 = time.monotonic()
    r = _cli(["annotate", "--output", str(tmp_path / "out"), "--progress", "none"], "nobody-here/no-such-model", tmp_path)
    elapsed = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-3000:]
    assert "nobody-here/no-such-model" in r.stderr  # BIOGLINER_MODEL was used
    assert 'section "Offline"' in r.stderr and "scripts/make_tiny_checkpoint.py" in r.stderr
    assert "starting a local Ray" not in r.stderr
    assert not (tmp_path / "out" / "commits").exists()
    print(f"unreachable hub: exit {r.returncode} after {elapsed:.1f} s")


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--labels", "biomed", "--text", "BRCA1 mutations cause breast cancer."],
        ["labels", "embed", "--labels", "biomed", "--out", "bank.safetensors"],
        ["eval", "--data", "gold.jsonl"],
    ],
    ids=["predict", "labels-embed", "eval"],
)
def test_every_model_command_honours_biogliner_model(args, tmp_path):
    (tmp_path / "gold.jsonl").write_text('{"text": "BRCA1 is a gene.", "entities": [{"start": 0, "end": 5, "label": "gene"}]}\n')
    missing = str(tmp_path / "no-such-checkpoint")
    r = _cli(args, missing, tmp_path)
    assert r.returncode != 0
    assert "no-such-checkpoint" in r.stderr, r.stderr[-3000:]


def test_nightly_with_another_model_is_refused_before_ray(after_a, model_b, labels_file, tmp_path, monkeypatch):
    """A new update file must not be annotated by model B beside model A's commits (exit 3)."""
    from biogliner.cli import main

    updates = tmp_path / "updatefiles"
    shutil.copytree(sample_corpus_path() / "pubmed", updates)
    shutil.copy(updates / "pubmed26n0002.xml.gz", updates / "pubmed26n0003.xml.gz")  # new tonight
    out = tmp_path / "out"
    shutil.copytree(after_a, out)
    before = _commits(out)
    monkeypatch.setattr("biogliner.pipeline.launch.ray_connector", lambda connect, log: _no_ray)
    code = main(["nightly", "--pubmed-updates", str(updates), "--output", str(out), "--model", str(model_b),
                 "--labels", str(labels_file), "--progress", "none"])
    assert code == 3
    assert _commits(out) == before


def test_no_refresh_current_leaves_the_current_tables_to_store_refresh(ray_session, tiny_checkpoint, labels_file, tmp_path):
    from biogliner.cli import main
    from biogliner.store.refresh import pending

    out = tmp_path / "out"
    one = str(sample_corpus_path() / "pubmed" / "pubmed26n0002.xml.gz")
    summary = annotate(_config(out, tiny_checkpoint, labels_file, one, refresh_current=False))
    assert summary.ok and "refresh_current_s" not in summary.timings
    assert [r.unit_id for r in pending(str(out))] == ["pubmed/pubmed26n0002", "pubmed/pubmed26n0002#tiny@1"]
    assert not (out / "current_documents").exists()
    assert main(["store", "refresh", "--output", str(out)]) == 0
    assert pending(str(out)) == [] and (out / "current_documents" / "_delta_log").is_dir()
