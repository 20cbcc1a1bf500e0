"""Every python command a cluster config runs (RayJob entrypoints, init containers, launcher setup)
exists in the checkout at the path the image gives it, answers ``--help``, and accepts every
option the config passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from cluster_helpers import LAUNCHER_YAML, MANIFESTS, ROOT, image_path_to_repo, python_commands
from kuberay_schema import cluster_spec_of, job_spec_of


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every python command in cluster/."""
    out = []
    for path in MANIFESTS:
        doc = yaml.safe_load(path.read_text())
        job = job_spec_of(doc)
        if job is not None:
            out += [(f"{path.name}:entrypoint", cmd) for cmd in python_commands(job["entrypoint"])]
        spec = cluster_spec_of(doc)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            for c in group["template"]["spec"].get("initContainers", []):
                if c.get("command", [None])[0] in ("python", "python3"):
                    out.append((f"{path.name}:{group.get('groupName', 'head')}/{c['name']}", c["command"] + c.get("args", [])))
    launcher = yaml.safe_load(LAUNCHER_YAML.read_text())
    for cmd in launcher["setup_commands"]:
        out += [("aws/cluster.yaml:setup_commands", c) for c in python_commands(cmd)]
    return out


COMMANDS = _commands()
SCRIPTS = sorted({argv[1] for _, argv in COMMANDS})


def test_the_configs_run_the_expected_scripts():
    names = {s.rsplit("/", 1)[-1] for s in SCRIPTS}
    assert {"annotate.py", "nightly.py", "fetch_model.py"} <= names


@pytest.fixture(scope="module")
def help_texts():
    cache: dict[str, str] = {}

    def get(script: str) -> str:
        if script not in cache:
            path = image_path_to_repo(script)
            if not path.exists() and path.parent.name == "jobs":
                pytest.skip(f"{path.relative_to(ROOT)} has not landed yet (another engineer is writing it)")
            assert path.is_file(), f"{script} -> {path} does not exist"
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
            env.pop("RAY_ADDRESS", None)
            proc = subprocess.run(
                [sys.executable, str(path), "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
            )
            assert proc.returncode == 0, f"{script} --help failed:\n{proc.stderr[-2000:]}"
            assert "usage:" in proc.stdout
            cache[script] = proc.stdout
        return cache[script]

    return get


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_exists_and_answers_help(script, help_texts):
    help_texts(script)


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_option_a_config_passes_is_accepted(where, argv, help_texts):
    text = help_texts(argv[1])
    accepted = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    used = [a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")]
    unknown = [o for o in used if o not in accepted]
    assert not unknown, f"{where}: options not in {argv[1]} --help: {unknown}"
