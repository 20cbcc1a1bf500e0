"""Fixtures of the readers' tests (helpers live in ``sources_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sources_fixtures import FIXTURES


@pytest.fixture()
def fixtures_dir() -> Path:
    return FIXTURES
