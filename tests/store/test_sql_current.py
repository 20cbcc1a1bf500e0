"""`biogliner sql`'s current_* views: the maintained Delta tables when they are up to date with the
commits table, the read-time resolution otherwise (and always for --as-of). Both must agree."""

from __future__ import annotations

import duckdb
import pytest
from scenario_data import build_scenario, scenario_inputs, write_input

from biogliner.store.refresh import refresh_current, up_to_date
from biogliner.store.views import CURRENT_VIEWS, register, snapshot

pytest.importorskip("deltalake")


def _rows(output, current: str) -> dict[str, list]:
    con = duckdb.connect()
    register(con, output, snapshot(output), current=current)
    return {v: sorted(map(repr, con.execute(f"SELECT * FROM {v}").fetchall())) for v in CURRENT_VIEWS}


def _source(con, view: str) -> str:
    return con.execute(f"SELECT sql FROM duckdb_views() WHERE view_name = '{view}'").fetchone()[0]


def test_maintained_current_tables_equal_the_read_time_views_and_auto_picks_them_only_when_up_to_date(tmp_path):
    output = build_scenario(str(tmp_path / "out"))
    assert not up_to_date(output.root_url)
    con = duckdb.connect()
    register(con, output)  # auto, nothing applied yet: read-time resolution
    assert "current_documents/" not in _source(con, "current_entities")

    refresh_current(output.root_url)
    assert up_to_date(output.root_url)
    maintained, views = _rows(output, "maintained"), _rows(output, "views")
    assert all(views[v] for v in CURRENT_VIEWS)
    assert maintained == views
    con = duckdb.connect()
    register(con, output)
    assert "current_entities/" in _source(con, "current_entities")  # auto: the maintained table's files

    # a new commit not yet applied: auto falls back to the views, which already show it
    late = next(s for s in scenario_inputs() if s.input == "pubmed26n0004")
    write_input(output, late, run_id="run-late", label_sets=(("late@1", "fp-late"),))
    assert not up_to_date(output.root_url)
    con = duckdb.connect()
    register(con, output)
    assert "current_entities/" not in _source(con, "current_entities")
    assert con.execute("SELECT count(*) FROM current_entities WHERE label_set = 'late@1'").fetchone()[0] > 0
    refresh_current(output.root_url)
    assert _rows(output, "maintained") == _rows(output, "views")


def test_store_refresh_cli_catches_up_after_a_run_that_died_before_refreshing(tmp_path, capsys):
    from biogliner.cli import main

    output = build_scenario(str(tmp_path / "out"))
    root = output.root_url
    assert main(["store", "refresh", "--output", root, "--check"]) == 1
    assert "not applied" in capsys.readouterr().out
    assert main(["store", "refresh", "--output", root]) == 0
    assert "applied" in capsys.readouterr().out and up_to_date(root)
    assert main(["store", "refresh", "--output", root, "--check"]) == 0
    assert main(["store", "refresh", "--output", str(tmp_path / "nothing")]) == 3
