"""End to end: a real Ray head (dashboard + job server, token auth on) that listens on 127.0.0.1
only, `ray job submit` of jobs/annotate.py on the bundled sample corpus, and a failing job.

Isolation: the head runs in a fresh network namespace that has only a loopback interface (nothing
it opens is reachable from outside, whatever address Ray picks) and in its own PID + mount
namespace, so that `ray stop` in teardown sees and stops only this head's processes, never the
pytest session's own Ray or anyone else's; killing the namespace's init process then reaps
anything left. Needs root and `ip netns` / `unshare` / `nsenter`: skipped otherwise (starting Ray
on the host network would listen on every interface). Distinct --temp-dir and ports.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cluster_helpers import ROOT, committed_output

pytestmark = pytest.mark.slow

GCS_PORT = 46391
DASHBOARD_PORT = 48291
CLIENT_PORT = 40091
ADDRESS = f"http://127.0.0.1:{DASHBOARD_PORT}"
VENV_BIN = Path(sys.executable).parent
SAMPLE = ROOT / "biogliner" / "data" / "sample"
INPUT_SUFFIXES = (".xml", ".xml.gz", ".nxml")


# PID 1 of the namespace: adopts the Ray daemons and reaps them when they exit, so that `ray stop`
# sees them gone at once (an init that never reaps, like `sleep`, leaves zombies it waits on).
_REAPER = """
import os, time
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.2)
"""


@dataclass
class NamespacedHead:
    netns: str
    anchor_pid: int  # host pid of the PID namespace's init
    env: dict
    temp_dir: Path

    def run(self, args: list[str], timeout: float = 180, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = ["nsenter", f"--target={self.anchor_pid}", "--pid", "--mount", "--net", f"--wd={cwd}", "--", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env or self.env, timeout=timeout)


def _ns_tools_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a loopback-only network namespace"
    for tool in ("ip", "unshare", "nsenter", "ss"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return f"`unshare --pid --mount-proc` not permitted: {probe.stderr.decode(errors='replace').strip()}"
    return None


def _child_pid(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError(f"unshare (pid {pid}) did not fork its namespace init")


def _clean_env(token_file: Path) -> dict:
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        PATH=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",  # the project venv first: the job's python
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def head():
    reason = _ns_tools_available()
    if reason:
        pytest.skip(f"e2e Ray head: {reason}")
    netns = f"bgl-e2e-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", netns], capture_output=True).returncode != 0:
        pytest.skip("e2e Ray head: `ip netns add` is not permitted here")
    temp_dir = Path(tempfile.mkdtemp(prefix="bgray", dir="/tmp"))  # short: Ray's socket paths are length-limited
    token_file = temp_dir / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    anchor = None
    h = None
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        anchor = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
             sys.executable, "-c", _REAPER],
            stdin=subprocess.DEVNULL,
        )
        h = NamespacedHead(netns, _child_pid(anchor.pid), _clean_env(token_file), temp_dir)
        started = h.run(
            [
                "ray", "start", "--head",
                f"--temp-dir={temp_dir / 'ray'}",
                "--node-ip-address=127.0.0.1",
                f"--port={GCS_PORT}",
                f"--ray-client-server-port={CLIENT_PORT}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={DASHBOARD_PORT}",
                "--include-dashboard=true",
                "--num-cpus=2",
                "--object-store-memory=400000000",
                "--disable-usage-stats",
            ],
            timeout=180,
        )
        assert started.returncode == 0, f"ray start failed:\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}"
        yield h
    finally:
        if h is not None:
            h.run(["ray", "stop", "--force"], timeout=60)  # sees only this PID namespace
        if anchor is not None:
            if h is not None:
                try:
                    os.kill(h.anchor_pid, signal.SIGKILL)  # the namespace's init: the kernel reaps the rest
                except ProcessLookupError:
                    pass
            anchor.kill()
            anchor.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _listeners(h: NamespacedHead) -> list[str]:
    out = h.run(["ss", "-Hltnu"], timeout=30)
    assert out.returncode == 0, out.stderr
    return [line.split()[4] for line in out.stdout.splitlines() if line.strip()]


def _manifest_env_vars(hf_home: Path) -> dict:
    """The env_vars of the shipped RayJob's runtimeEnvYAML (HF_HOME moved to a temp dir), so that
    this test runs the job under the runtime env the manifests deploy."""
    job = yaml.safe_load((ROOT / "cluster" / "kuberay" / "rayjob-baseline.yaml").read_text())["spec"]
    env_vars = dict(yaml.safe_load(job["runtimeEnvYAML"])["env_vars"])
    assert "HF_HOME" in env_vars
    env_vars["HF_HOME"] = str(hf_home)
    return env_vars


def _submit(h: NamespacedHead, submission_id: str, entrypoint: list[str], timeout: float, tmp: Path) -> subprocess.CompletedProcess:
    runtime_env = {
        "working_dir": str(ROOT),
        "excludes": [".git", ".venv", "biogliner-output", "*.parquet"],
        "env_vars": _manifest_env_vars(tmp / "hf-home"),
    }
    return h.run(
        ["ray", "job", "submit", f"--address={ADDRESS}", f"--submission-id={submission_id}",
         f"--runtime-env-json={json.dumps(runtime_env)}", "--", *entrypoint],
        timeout=timeout,
    )


def _status(h: NamespacedHead, submission_id: str) -> str:
    out = h.run(["ray", "job", "status", f"--address={ADDRESS}", submission_id], timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"Job '[^']+' (succeeded|failed|stopped|is currently \w+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    return m.group(1)


def test_head_listens_on_loopback_only(head):
    addrs = _listeners(head)
    assert any(a.endswith(f":{DASHBOARD_PORT}") for a in addrs) and any(a.endswith(f":{GCS_PORT}") for a in addrs)
    for a in addrs:  # every listener is bound to loopback (v4, v4-mapped or v6)
        host = a.rsplit(":", 1)[0].strip("[]")
        assert host in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), a
    iface = head.run(["ip", "-o", "addr"], timeout=30).stdout
    assert set(re.findall(r"^\d+: (\S+)", iface, re.M)) == {"lo"}, iface


def test_requests_without_the_right_token_are_refused(head):
    listing = ["ray", "job", "list", f"--address={ADDRESS}"]
    ok = head.run(listing, timeout=60)
    assert ok.returncode == 0, ok.stderr[-2000:]
    no_token = {k: v for k, v in head.env.items() if not k.startswith("RAY_AUTH")}
    no_token["RAY_AUTH_MODE"] = "disabled"
    wrong_token = {**no_token, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for env, refusal in ((no_token, "Unauthorized: Missing authentication token"), (wrong_token, "Forbidden: Invalid authentication token")):
        out = head.run(listing, timeout=60, env=env)
        assert out.returncode != 0
        assert "AuthenticationError" in out.stderr and refusal in out.stderr, out.stderr[-2000:]


def test_job_submit_annotates_the_sample_corpus(head, tiny_checkpoint, tmp_path):
    if not (ROOT / "jobs" / "annotate.py").is_file():
        pytest.skip("jobs/annotate.py has not landed yet")
    out_dir = tmp_path / "out"
    res = _submit(
        head, "bgl-e2e-ok",
        ["python", "jobs/annotate.py", "--model", str(tiny_checkpoint), "--output", str(out_dir), "--progress", "log"],
        timeout=420,
        tmp=tmp_path,
    )
    assert res.returncode == 0, f"job failed:\n{res.stdout[-6000:]}\n{res.stderr[-3000:]}"
    assert _status(head, "bgl-e2e-ok") == "succeeded"

    inputs = sorted(p.name for p in SAMPLE.rglob("*") if p.is_file() and p.name.endswith(INPUT_SUFFIXES))
    got = committed_output(out_dir)
    assert got["inputs"] == inputs, "the commits table does not record every sample input"
    assert got["not_committed"] == []
    assert got["units"] and got["label_sets"] == got["units"], "a unit lacks its entities commit"
    for table in ("documents", "passages", "entities"):
        assert got["rows"][table] > 0, f"no committed {table} rows"
    assert got["orphans"] == [], "data files no Delta log names"
    assert list((out_dir / "_runs").glob("*.json")), "no run summary"


def test_failing_job_reports_failed(head, tiny_checkpoint, tmp_path):
    if not (ROOT / "jobs" / "annotate.py").is_file():
        pytest.skip("jobs/annotate.py has not landed yet")
    missing = tmp_path / "no-such-dir" / "*.xml.gz"
    res = _submit(
        head, "bgl-e2e-fail",
        ["python", "jobs/annotate.py", "--input", str(missing), "--model", str(tiny_checkpoint), "--output", str(tmp_path / "out")],
        timeout=300,
        tmp=tmp_path,
    )
    assert res.returncode != 0
    assert _status(head, "bgl-e2e-fail") == "failed"
    logs = head.run(["ray", "job", "logs", f"--address={ADDRESS}", "bgl-e2e-fail"], timeout=60)
    assert "no-such-dir" in logs.stdout, logs.stdout[-3000:]
    assert not (tmp_path / "out" / "commits").exists(), "the failed job committed something"


# -- the recipe of docs/cluster.md, "ray job submit: local head and KubeRay", run as written -------

DOCS = ROOT / "docs" / "cluster.md"
RECIPE_MARK = "<!-- job-submit-local-head -->"


def _docs_recipe() -> str:
    """The bash block after the marker in docs/cluster.md, continuation lines joined."""
    text = DOCS.read_text()
    assert RECIPE_MARK in text, f"{DOCS}: the local-head recipe marker is gone"
    block = text.split(RECIPE_MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block.replace("\\\n", " ")


def _recipe_script(model: str, output: str) -> str:
    """The recipe minus what the fixture does itself (make the checkpoint, start and stop the
    head), pointed at this test's head port, checkpoint and output; everything else verbatim."""
    lines = [
        line for line in _docs_recipe().splitlines()
        if line.strip() and not any(skip in line for skip in ("make_tiny_checkpoint.py", "ray start", "ray stop"))
    ]
    script = "\n".join(lines)
    for old, new in (("127.0.0.1:8265", f"127.0.0.1:{DASHBOARD_PORT}"),
                     ('"$PWD/tiny-checkpoint"', shlex.quote(model)),
                     ('"$PWD/biogliner-output"', shlex.quote(output))):
        assert script.count(old) == 1, f"the docs recipe no longer has exactly one {old!r}:\n{script}"
        script = script.replace(old, new)
    assert "ray job submit --working-dir . --" in script and '"$PWD/.venv/bin/python" jobs/annotate.py' in script, script
    return "set -e\n" + script


def _run_recipe(head: NamespacedHead, tmp: Path, model: str, output: str) -> tuple[subprocess.CompletedProcess, str | None]:
    """A shell like a user's: no RAY_AUTH_* variables (the token sits in ~/.ray/auth_token, as
    `ray start` leaves it), no virtual environment on PATH."""
    home = tmp / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    shutil.copy(head.temp_dir / "auth_token", home / ".ray" / "auth_token")
    env = {k: v for k, v in head.env.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    res = head.run(["bash", "-c", _recipe_script(model, output)], timeout=420, env=env)
    m = re.search(r"Job '([^']+)' (?:submitted successfully|succeeded|failed)", res.stdout + res.stderr)
    return res, (m.group(1) if m else None)


@pytest.fixture()
def recipe_ready():
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the docs recipe uses the project's .venv at the repository root")
    if not (ROOT / "jobs" / "annotate.py").is_file():
        pytest.skip("jobs/annotate.py has not landed yet")


def test_job_submitted_as_the_docs_say_commits_its_tables(head, recipe_ready, tiny_checkpoint, tmp_path):
    out_dir = tmp_path / "biogliner-output"
    res, job_id = _run_recipe(head, tmp_path, str(tiny_checkpoint), str(out_dir))
    assert res.returncode == 0, f"the docs recipe failed:\n{res.stdout[-6000:]}\n{res.stderr[-3000:]}"
    assert job_id and _status(head, job_id) == "succeeded"
    inputs = sorted(p.name for p in SAMPLE.rglob("*") if p.is_file() and p.name.endswith(INPUT_SUFFIXES))
    got = committed_output(out_dir)
    assert got["inputs"] == inputs and got["not_committed"] == []
    assert got["units"] and got["label_sets"] == got["units"]
    for table in ("documents", "passages", "entities"):
        assert got["rows"][table] > 0, table
    assert got["orphans"] == []


@pytest.mark.parametrize("case", ["relative-output", "missing-model"])
def test_docs_recipe_refuses_a_relative_output_and_a_missing_model(head, recipe_ready, tiny_checkpoint, tmp_path, case):
    if case == "relative-output":
        model, output, expected = str(tiny_checkpoint), "rel-output", "--output 'rel-output' is a relative path"
    else:
        model, output, expected = str(tmp_path / "no-such-checkpoint"), str(tmp_path / "out"), "no such checkpoint directory"
    t0 = time.monotonic()
    res, job_id = _run_recipe(head, tmp_path, model, output)
    assert res.returncode != 0
    assert job_id and _status(head, job_id) == "failed"
    logs = head.run(["ray", "job", "logs", f"--address={ADDRESS}", job_id], timeout=60).stdout
    assert expected in logs, logs[-3000:]
    assert "committed" not in logs  # refused before any work
    assert not (tmp_path / "out").exists()
    print(f"{case}: refused after {time.monotonic() - t0:.1f} s")
