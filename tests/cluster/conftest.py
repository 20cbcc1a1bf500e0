"""Fixtures for the cluster deliverables: manifests, launcher YAML, Dockerfile, job entrypoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cluster_helpers import LAUNCHER_YAML, MANIFESTS, SCHEMAS_DIR, KUBERAY_DIR, load_manifest


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
