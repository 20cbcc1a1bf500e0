"""Fixtures for the predict/labels CLI tests: a second checkpoint (another seed) and helpers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory) -> Path:
    """Same shapes as ``tiny_checkpoint``, another seed: a different fingerprint."""
    from biogliner.testing.random_checkpoint import build_random_checkpoint

    out = tmp_path_factory.mktemp("ckpt-other") / "tiny-bi-seed1"
    build_random_checkpoint(out, seed=1)
    return out


@pytest.fixture()
def cli(capsys):
    """Run ``biogliner ARGS`` in-process; returns (exit status, stdout, stderr)."""
    from biogliner.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run
