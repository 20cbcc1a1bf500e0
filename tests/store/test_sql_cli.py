"""``biogliner sql`` on local and moto-S3 output roots (Delta tables)."""

from __future__ import annotations

import io
import json

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scenario_data import EXPECTED_CURRENT, build_scenario, scenario_inputs, write_input

from biogliner.cli import main
from biogliner.store.sql import TableStyle, format_table

Q = "SELECT doc_id, input FROM current_documents ORDER BY doc_id"


def _run(capsysbinary, *argv) -> tuple[int, bytes, str]:
    rc = main(["sql", *argv])
    out, err = capsysbinary.readouterr()
    return rc, out, err.decode()


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        r = str(tmp_path / "out")
    else:
        r = request.getfixturevalue("s3_bucket") + "/out"
    build_scenario(r)
    return r


def test_formats(root, capsysbinary, tmp_path):
    rc, out, _ = _run(capsysbinary, "--output", root, Q, "--format", "json")
    assert rc == 0
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert {r["doc_id"]: r["input"] for r in rows} == EXPECTED_CURRENT

    rc, out, _ = _run(capsysbinary, "--output", root, Q, "--format", "csv")
    t = pacsv.read_csv(io.BytesIO(out))
    assert dict(zip(t.column("doc_id").to_pylist(), t.column("input").to_pylist())) == EXPECTED_CURRENT

    target = tmp_path / "r.parquet"
    rc, out, err = _run(capsysbinary, "--output", root, Q, "--format", "parquet", "--to", str(target))
    assert rc == 0 and out == b"" and "wrote 7 rows" in err
    t = pq.read_table(target)
    assert dict(zip(t.column("doc_id").to_pylist(), t.column("input").to_pylist())) == EXPECTED_CURRENT

    rc, out, _ = _run(capsysbinary, "--output", root, Q)
    lines = out.decode().splitlines()
    assert lines[0].split() == ["doc_id", "|", "input"]
    assert lines[-1] == "(7 rows)"
    # aligned: the column separator sits at the same offset on every row
    assert len({line.index("|") for line in lines[:1] + lines[2:-1]}) == 1


def test_long_values_shortened_only_in_the_readable_table(root, capsysbinary):
    q = "SELECT doc_id, text FROM current_passages WHERE doc_id = 'pubmed:2' AND section = 'abstract'"
    full = "diabetes v3 text. Aspirin was co-administered with insulin."
    rc, out, _ = _run(capsysbinary, "--output", root, q, "--max-width", "20")
    text = out.decode()
    assert rc == 0 and full not in text and full[:19] + "…" in text
    assert "1 cell(s) longer than 20 characters are shortened" in text
    for fmt in ("csv", "json"):
        rc, out, _ = _run(capsysbinary, "--output", root, q, "--format", fmt, "--max-width", "20")
        assert full in out.decode()


def test_errors(root, capsysbinary, tmp_path):
    rc, out, err = _run(capsysbinary, "--output", root, "SELECT nope FROM current_documents")
    assert rc == 1 and "query failed" in err and "nope" in err and out == b""
    rc, _, err = _run(capsysbinary, "--output", str(tmp_path / "missing"), "SELECT 1")
    assert rc == 3 and "does not exist" in err and "commits/" in err
    rc, _, err = _run(capsysbinary, "--output", root)
    assert rc == 2 and "no query" in err
    rc, out, err = _run(capsysbinary, "--output", root, "--as-of", "last tuesday", "SELECT 1")
    assert rc == 2 and "--as-of" in err and "ISO-8601" in err and out == b""
    rc, _, err = _run(capsysbinary, "--output", root, "--as-of", "999", "SELECT 1")
    assert rc == 3 and "no version 999" in err
    rc, _, err = _run(capsysbinary, "--output", root, "--as-of", "0", "SELECT 1")
    assert rc == 3 and "nothing was committed as of version 0" in err
    rc, _, err = _run(capsysbinary, "--output", root, "--as-of", "1999-01-01T00:00:00Z", "SELECT 1")
    assert rc == 3 and "nothing was committed as of 1999-01-01" in err
    rc, _, err = _run(capsysbinary, "--output", root, "--views", "--dialect", "trino", "--as-of", "1")
    assert rc == 2 and "--as-of" in err


def test_views_flag_prints_definitions(root, capsysbinary):
    rc, out, _ = _run(capsysbinary, "--output", root, "--views")
    sql = out.decode()
    assert rc == 0
    for v in ("documents", "passages", "entities", "deletions", "errors", "current_documents", "current_passages",
              "current_entities"):
        assert f"CREATE OR REPLACE VIEW {v} AS" in sql
    assert "CREATE OR REPLACE VIEW commits AS" in sql
    rc, out, _ = _run(capsysbinary, "--output", root, "--views", "--dialect", "spark")
    spark = out.decode()
    assert "USING DELTA" in spark and "pubmed26n0001" not in spark
    if root.startswith("s3://"):
        assert "LOCATION 's3a://" in spark and "httpfs" in sql


def test_query_from_stdin_and_file(tmp_path, capsysbinary, monkeypatch):
    root = str(tmp_path / "out")
    build_scenario(root)
    qf = tmp_path / "q.sql"
    qf.write_text("SELECT count(*) AS n FROM current_documents")
    rc, out, _ = _run(capsysbinary, "--output", root, "--file", str(qf), "--format", "json")
    assert rc == 0 and json.loads(out) == {"n": 7}
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT count(*) AS n FROM deletions"))
    rc, out, _ = _run(capsysbinary, "--output", root, "-", "--format", "json")
    assert rc == 0 and json.loads(out) == {"n": 5}


def _json_rows(capsysbinary, *argv) -> list[dict]:
    rc, out, err = _run(capsysbinary, *argv, "--format", "json")
    assert rc == 0, err
    return [json.loads(line) for line in out.decode().splitlines()]


def test_as_of_a_commits_version_or_time(tmp_path, capsysbinary):
    """(b) --as-of the commits version before a second unit (a night of revisions and
    deletions): the earlier state, the same as a fresh root holding only the first unit."""
    import time
    from datetime import datetime, timezone

    from biogliner.store.output import Output

    specs = {s.input: s for s in scenario_inputs()}
    root, alone = str(tmp_path / "o"), str(tmp_path / "alone")
    output = Output(root)
    write_input(output, specs["pubmed26n0001"], "r1")
    v1 = output.delta.version("commits")
    time.sleep(0.01)
    t1 = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    time.sleep(0.01)
    write_input(output, specs["pubmed26n0003"], "r3")
    write_input(Output(alone), specs["pubmed26n0001"], "r1")

    q = "SELECT count(*) AS n, count(DISTINCT input) AS inputs FROM current_documents"
    latest = _json_rows(capsysbinary, "--output", root, q)
    first = _json_rows(capsysbinary, "--output", alone, q)
    assert latest != first and first == [{"n": 5, "inputs": 1}]
    for as_of in (str(v1), t1):
        assert _json_rows(capsysbinary, "--output", root, "--as-of", as_of, q) == first, as_of
        ents = "SELECT doc_id, start, text FROM current_entities ORDER BY ALL"
        assert _json_rows(capsysbinary, "--output", root, "--as-of", as_of, ents) == _json_rows(
            capsysbinary, "--output", alone, ents)
    # the DuckDB script as of v1 is a snapshot of that state
    rc, out, _ = _run(capsysbinary, "--output", root, "--views", "--as-of", str(v1))
    assert rc == 0 and f"commits table version {v1}" in out.decode() and "pubmed26n0003" not in out.decode()


def test_counts_equal_delta_readers(tmp_path, capsysbinary):
    """(c) With no crashed run, the history views hold exactly the Delta tables' rows, as
    deltalake (and Polars, when installed) read them."""
    import deltalake

    root = str(tmp_path / "out")
    build_scenario(root, crashes=False)
    for table in ("documents", "passages", "entities", "deletions", "errors"):
        rows = _json_rows(capsysbinary, "--output", root, f"SELECT count(*) AS n FROM {table}")
        assert rows == [{"n": deltalake.DeltaTable(f"{root}/{table}").to_pyarrow_table().num_rows}], table
    rows = _json_rows(capsysbinary, "--output", root, "SELECT count(*) AS n FROM commits")
    assert rows == [{"n": deltalake.DeltaTable(f"{root}/commits").to_pyarrow_table().num_rows}]


def test_counts_equal_polars_scan_delta(tmp_path, capsysbinary):
    pl = pytest.importorskip("polars")
    root = str(tmp_path / "out")
    build_scenario(root, crashes=False)
    for table in ("documents", "entities"):
        n = pl.scan_delta(f"{root}/{table}").select(pl.len()).collect().item()
        assert _json_rows(capsysbinary, "--output", root, f"SELECT count(*) AS n FROM {table}") == [{"n": n}], table


def test_format_table_escapes_and_nulls():
    import pyarrow as pa

    t = pa.table({"a": ["x\ny", None], "n": [1.5, None]})
    text = format_table(t, TableStyle(max_width=10))
    assert "x\\ny" in text and "NULL" in text and "(2 rows)" in text and "note" not in text
