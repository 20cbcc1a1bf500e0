"""kill -9 of the driver at every commit boundary, then a rerun: the Delta tables equal a clean run's.

Each commit of a batch of units is one Delta commit per data table, then one on ``commits``
(:meth:`biogliner.store.delta.DeltaStore.commit_units`). The driver is killed (``os._exit(137)``,
subprocesses) right after each table's commit and before the ``commits`` commit, one boundary per
run, on one output root; a last run completes it. Between kills, readers see a unit entirely or
not at all; at the end the tables, read RAW by deltalake (every committed file, no filtering by
the commits table), equal a clean run's, scores included: the rerun removed what the crashed
attempts had committed without their ``commits`` row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import TINY_THRESHOLD, read_tables

from biogliner.pipeline.faults import COMMIT_POINTS
from biogliner.schema import TABLES
from biogliner.sources import sample_corpus_path
from biogliner.testing.synthetic import make_pubmed_shard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The sample corpus and a generated shard with a record the reader skips (so that every
    table gets rows: deletions come with the sample's update-style shard, errors with the skip)."""
    d = tmp_path_factory.mktemp("crash") / "in"
    shutil.copytree(sample_corpus_path(), d)
    raw = make_pubmed_shard(30, first_pmid=61_000_000, compress=False)
    skip = b"<PubmedBookArticle><PubmedBookData/></PubmedBookArticle>\n</PubmedArticleSet>"  # no BookDocument: a skip
    (d / "pubmed" / "pubmed26n0100.xml").write_bytes(raw.replace(b"</PubmedArticleSet>", skip))
    return d


def _args(corpus: Path, out: Path, tiny_checkpoint) -> list[str]:
    return ["--input", str(corpus), "--output", str(out), "--model", str(tiny_checkpoint), "--threshold", str(TINY_THRESHOLD),
            "--progress", "none", "--rows-per-call", "16", "--block-rows", "24", "--max-parse-tasks", "1", "--commit-wait", "0"]


def _run(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "biogliner", "annotate", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def raw_tables(root: Path) -> dict[str, list]:
    """Every row of every table as deltalake reads it (all committed files), run ids aside."""
    from deltalake import DeltaTable

    out = {}
    for table in TABLES:
        try:
            t = DeltaTable(str(root / table)).to_pyarrow_table()
        except Exception:  # noqa: BLE001 (a table no unit wrote)
            out[table] = []
            continue
        out[table] = sorted(repr(sorted((k, v) for k, v in r.items() if k != "run_id")) for r in t.to_pylist())
    return out


def _visible_units_are_whole(root: Path) -> None:
    """Through the readers, every committed unit has its parse rows and every label set's
    entity rows; nothing of an uncommitted unit shows."""
    from biogliner.store.output import Output

    state = Output(str(root)).state()
    t = read_tables(str(root))
    parts = {f"source={s}/input={i}" for (s, i) in state.parse}
    assert {p for p, _ in t["documents"]} <= parts and {p for p, _ in t["entities"]} <= parts
    for (s, i), rec in state.parse.items():
        docs = sum(1 for p, _ in t["documents"] if p == f"source={s}/input={i}")
        assert docs == rec.counts.get("documents", 0), (s, i)
        for ls, erec in state.label_sets.get((s, i), {}).items():
            n = sum(1 for p, r in t["entities"] if p == f"source={s}/input={i}" and dict(r)["label_set"] == ls)
            assert n == erec.counts["entities"], (s, i, ls)


def test_kill_at_every_commit_boundary_then_rerun_equals_a_clean_run(corpus, tiny_checkpoint, ray_session, tmp_path):
    env = {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    clean = tmp_path / "clean"
    r = _run(_args(corpus, clean, tiny_checkpoint), env)
    assert r.returncode == 0, r.stderr[-3000:]
    reference = raw_tables(clean)
    assert all(reference[t] for t in TABLES), {t: len(v) for t, v in reference.items()}

    out = tmp_path / "killed"
    fired = []
    for point in (*COMMIT_POINTS, "driver.before_commit"):
        k = _run(_args(corpus, out, tiny_checkpoint) + ["--fault", f"{point}=1"], env)
        assert k.returncode in (137, 0), k.stderr[-3000:]
        if k.returncode == 137:
            fired.append(point)
            _visible_units_are_whole(out)
    assert len(fired) >= 4, fired  # most boundaries are reached while units remain to commit
    final = _run(_args(corpus, out, tiny_checkpoint), env)
    assert final.returncode == 0, final.stderr[-3000:]
    assert raw_tables(out) == reference
    got, want = read_tables(str(out)), read_tables(str(clean))
    # the same commits, at higher versions where an attempt had crashed half-way
    unversioned = lambda rows: sorted(r[:5] + r[6:] for r in rows)  # noqa: E731
    assert unversioned(got.pop("commits")) == unversioned(want.pop("commits"))
    assert got == want
