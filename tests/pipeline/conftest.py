"""Pipeline fixtures (helpers live in ``pipeline_helpers``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from biogliner.sources import sample_corpus_path


@pytest.fixture()
def sample_dir(tmp_path) -> Path:
    """A private copy of the bundled sample corpus (tests may add files beside it)."""
    out = tmp_path / "sample"
    shutil.copytree(sample_corpus_path(), out)
    return out
