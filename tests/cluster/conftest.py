"""Fixtures for the cluster deliverables: manifests, launcher YAML, Dockerfile, job entrypoints."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY_DIR = ROOT / "cluster" / "kuberay"
LAUNCHER_YAML = ROOT / "cluster" / "aws" / "cluster.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMAS_DIR = ROOT.parent / "shared" / "schemas" / "kuberay"
# Where the Dockerfile puts the repository inside the image (WORKDIR).
IMAGE_ROOT = "/home/ray/biogliner"
MANIFESTS = sorted(KUBERAY_DIR.glob("*.yaml"))


def load_manifest(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.name}: expected one object, found {len(docs)}"
    return docs[0]


def image_path_to_repo(path: str) -> Path:
    """Map a path inside the image (``/home/ray/biogliner/jobs/x.py``) to the checkout."""
    assert path.startswith(IMAGE_ROOT + "/"), f"{path} is not under the image's project dir {IMAGE_ROOT}"
    return ROOT / path[len(IMAGE_ROOT) + 1 :]


def python_commands(shell: str) -> list[list[str]]:
    """The ``python SCRIPT ARGS...`` commands in a shell string (split on ; && ||), env prefixes dropped."""
    out = []
    for part in shell.replace("&&", ";").replace("||", ";").split(";"):
        words = shlex.split(part)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value prefixes
        if words and words[0] in ("python", "python3"):
            out.append(words)
    return out


@pytest.fixture(scope="session")
def kuberay_schemas() -> Path:
    if not (SCHEMAS_DIR / "SOURCES.md").is_file():
        pytest.skip(f"KubeRay CRD schemas absent ({SCHEMAS_DIR})")
    return SCHEMAS_DIR


@pytest.fixture(scope="session")
def manifests() -> dict[str, dict]:
    assert MANIFESTS, f"no manifests in {KUBERAY_DIR}"
    return {p.name: load_manifest(p) for p in MANIFESTS}


@pytest.fixture(scope="session")
def launcher_config() -> dict:
    return yaml.safe_load(LAUNCHER_YAML.read_text())
