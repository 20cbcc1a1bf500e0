"""Store test fixtures (data builders live in ``scenario_data``)."""

from __future__ import annotations

import pytest
from scenario_data import build_scenario


@pytest.fixture()
def scenario_root(tmp_path) -> str:
    root = str(tmp_path / "out")
    build_scenario(root)
    return root
