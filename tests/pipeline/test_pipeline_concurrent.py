"""Two `annotate` processes at once on disjoint inputs into ONE root on s3:// (moto, 127.0.0.1).

Both create the same Delta tables and commit into them concurrently; Delta's conditional log
writes and the app transactions must leave every unit committed exactly once, and the tables
equal to one run over both inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import CREDS, TINY_THRESHOLD, new_bucket, read_tables, upload_dir

from biogliner.testing.synthetic import make_pubmed_shard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "pipeline-concurrent")


def _args(inputs: str, out: str, tiny_checkpoint) -> list[str]:
    # the two jobs share the session's 2-CPU Ray: half a CPU per model actor and one parse task
    # each leave room for both (each job's Ray Data would otherwise take the CPUs the other needs)
    return ["--input", inputs, "--output", out, "--model", str(tiny_checkpoint), "--threshold", str(TINY_THRESHOLD),
            "--storage-options", json.dumps(CREDS), "--progress", "none", "--rows-per-call", "16", "--block-rows", "24",
            "--cpus-per-worker", "0.5", "--model-threads", "1", "--max-parse-tasks", "1"]


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "biogliner", "annotate", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_runs_on_disjoint_inputs_commit_every_unit_once(bucket, tiny_checkpoint, ray_session, tmp_path):
    from biogliner.store.output import Output

    local = tmp_path / "in"
    for half, first in (("a", 71_000_000), ("b", 72_000_000)):
        for k in range(3):
            p = local / half / f"pubmed26n{500 + 10 * (half == 'b') + k:04d}.xml.gz"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(make_pubmed_shard(8 + k, first_pmid=first + 1000 * k))
    upload_dir(local, f"{bucket}/in")
    env = {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}

    shared = f"{bucket}/shared"
    procs = [_start(_args(f"{bucket}/in/{half}", shared, tiny_checkpoint), env) for half in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se[-3000:]

    state = Output(shared, CREDS).state()
    ids = [r.unit_id for r in state.records]
    assert len(ids) == len(set(ids)) == 12  # 6 units: a parse row and a label-set row each, once
    assert {r.input for r in state.records} == {p.name.split(".")[0] for p in local.rglob("*.xml.gz")}

    single = f"{bucket}/single"
    r = subprocess.run([sys.executable, "-m", "biogliner", "annotate", *_args(f"{bucket}/in", single, tiny_checkpoint)],
                       cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = read_tables(shared, CREDS), read_tables(single, CREDS)
    assert got == want
    assert len(got["documents"]) == sum(8 + k for k in range(3)) * 2
