"""Read-time resolution of revisions and deletions, over the committed rows of Delta tables only."""

from __future__ import annotations

import duckdb
import pytest

from biogliner.schema import TABLES
from biogliner.store import views
from biogliner.store.output import NoCommitsError, Output

from scenario_data import (
    CRASHED, EXPECTED_CURRENT, LABEL_SET, MODEL, VOCAB, InputSpec, build_scenario, crash_before_commits, find_mentions, pm,
    pm_del, scenario_inputs, write_input,
)


def _current(con) -> dict[str, str]:
    rows = con.execute("SELECT doc_id, input FROM current_documents").fetchall()
    assert len(rows) == len({r[0] for r in rows}), f"duplicate current documents: {rows}"
    return dict(rows)


def _all_mentions():
    return [m for spec in scenario_inputs() for m in find_mentions(spec.docs, VOCAB)]


def test_current_documents_follow_file_order_and_deletions(scenario_root):
    con = views.connect(scenario_root)
    assert _current(con) == EXPECTED_CURRENT
    # the latest version's content, not an older one
    titles = dict(con.execute("SELECT doc_id, text FROM current_passages WHERE section = 'title'").fetchall())
    assert titles["pubmed:2"] == "Insulin v3."
    assert titles["pubmed:3"] == "Three re-added asthma."
    assert titles["pubmed:6"] == "Six v2 asthma and aspirin."
    assert titles["pmc:PMC100.2"] == "PMC v2 asthma"
    assert set(titles) == set(EXPECTED_CURRENT)
    # none of the deleted (5, 7 revised then deleted in the same file, 8, never-seen 999)
    gone = con.execute(
        "SELECT count(*) FROM current_entities WHERE doc_id IN ('pubmed:5', 'pubmed:7', 'pubmed:8', 'pubmed:999')"
    ).fetchall()
    assert gone == [(0,)]


def test_history_views_hold_every_committed_occurrence(scenario_root):
    con = views.connect(scenario_root)
    specs = scenario_inputs()
    n_docs = sum(len(s.docs) for s in specs)
    assert con.execute("SELECT count(*) FROM documents").fetchall() == [(n_docs,)]
    # pubmed:2 has three occurrences (baseline, night 1, night 2)
    assert con.execute("SELECT count(*) FROM documents WHERE doc_id = 'pubmed:2'").fetchall() == [(3,)]
    mentions = _all_mentions()
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(len(mentions),)]
    # history of pubmed:2's title mentions: 'Insulin' is not in VOCAB (case), so count diabetes
    hist = con.execute("SELECT input, count(*) FROM entities WHERE doc_id = 'pubmed:2' GROUP BY input ORDER BY input").fetchall()
    assert [r[0] for r in hist] == ["pubmed26n0001", "pubmed26n0003", "pubmed26n0004"]
    # deletions as recorded, including the PMID never seen
    dels = con.execute("SELECT doc_id, input FROM deletions ORDER BY input, position").fetchall()
    assert dels == [
        ("pubmed:3", "pubmed26n0003"), ("pubmed:999", "pubmed26n0003"),
        ("pubmed:5", "pubmed26n0004"), ("pubmed:8", "pubmed26n0004"), ("pubmed:7", "pubmed26n0004"),
    ]


def test_current_entities_are_exactly_those_of_current_versions(scenario_root):
    con = views.connect(scenario_root)
    expected = sorted(
        (doc_id, pi, e.start, e.end, e.text, e.label)
        for spec in scenario_inputs()
        for doc_id, _, pi, e, _ in find_mentions(spec.docs, VOCAB)
        if EXPECTED_CURRENT.get(doc_id) == spec.input
    )
    got = sorted(con.execute('SELECT doc_id, passage_index, start, "end", text, label FROM current_entities').fetchall())
    assert got == expected
    # offsets slice the passage text
    bad = con.execute(
        """SELECT count(*) FROM current_entities e JOIN current_passages p
           ON p.doc_id = e.doc_id AND p.input = e.input AND p.passage_index = e.passage_index
           WHERE substr(p.text, e.start + 1, e."end" - e.start) <> e.text"""
    ).fetchall()
    assert bad == [(0,)]


def test_uncommitted_files_are_invisible(scenario_root):
    """The fixture's crashed runs committed their data tables but not their commits rows: their
    rows are in the Delta logs, and in no view."""
    import deltalake

    all_docs = deltalake.DeltaTable(f"{scenario_root}/documents").to_pyarrow_table()
    assert set(all_docs.column("run_id").to_pylist()) >= {"run-crashed", "run-crashed-b1"}, "the fixture leaves crashed rows"
    con = views.connect(scenario_root)
    for v in views.BASE_VIEWS + views.CURRENT_VIEWS:
        assert con.execute(f"SELECT count(*) FROM {v} WHERE run_id LIKE 'run-crashed%'").fetchall() == [(0,)], v
    assert con.execute("SELECT count(*) FROM documents WHERE input = 'pubmed26n0005'").fetchall() == [(0,)]
    # the uncommitted night 3 deletes pubmed:4: not applied
    assert "pubmed:4" in _current(con)
    assert con.execute("SELECT count(*) FROM commits WHERE run_id LIKE 'run-crashed%'").fetchall() == [(0,)]


def test_crashed_unit_is_invisible_until_a_rerun_commits_it(tmp_path):
    """Data files committed without a commits row (a crash at "before:commits") are invisible in
    every view; the rerun commits only the commits row, and then they are visible (once)."""
    root = str(tmp_path / "o")
    output = Output(root)
    specs = {s.input: s for s in scenario_inputs()}
    write_input(output, specs["pubmed26n0001"], "r1")
    units = crash_before_commits(output, CRASHED, "r5")
    assert not output.delta.is_committed("pubmed/pubmed26n0005")

    def counts(con):
        return {v: con.execute(f"SELECT count(*) FROM {v} WHERE input = 'pubmed26n0005'").fetchone()[0]
                for v in views.BASE_VIEWS + views.CURRENT_VIEWS}

    con = views.connect(root)
    assert counts(con) == dict.fromkeys(views.BASE_VIEWS + views.CURRENT_VIEWS, 0)
    assert "pubmed:4" in _current(con)
    # the rerun: the data tables already hold the unit's transaction, only the commits row is added
    assert output.delta.commit_units(units) == {u.unit_id: True for u in units}
    con = views.connect(root)
    got = counts(con)
    n_mentions = len(find_mentions(CRASHED.docs, VOCAB))
    assert got["documents"] == 1 and got["deletions"] == 1 and got["entities"] == n_mentions
    assert got["current_documents"] == 1  # pubmed:1 revised by n0005
    assert "pubmed:4" not in _current(con)  # deleted by n0005
    assert con.execute("SELECT count(*) FROM documents WHERE doc_id = 'pubmed:1'").fetchall() == [(2,)]


def test_reannotation_replaces_current_entities_and_keeps_history(tmp_path):
    """--reannotate = the label set's unit committed again at a higher version (another model):
    current_entities reads only the new commit, entities keeps both."""
    root = str(tmp_path / "o")
    output = Output(root)
    spec = scenario_inputs()[0]
    write_input(output, spec, "r1")
    write_input(output, spec, "r2", parse=False, label_sets=((LABEL_SET, "fp-new"),), entity_versions={LABEL_SET: 2})
    con = views.connect(root)
    n = len(find_mentions(spec.docs, VOCAB))
    assert con.execute("SELECT model, count(*) FROM entities GROUP BY model ORDER BY model").fetchall() == [
        ("fp-new", n), (MODEL, n)
    ]
    assert con.execute("SELECT DISTINCT model FROM current_entities").fetchall() == [("fp-new",)]
    assert con.execute("SELECT count(*) FROM current_entities").fetchall() == [(n,)]
    # the commits view holds both entities commits
    rows = con.execute("SELECT version, model FROM commits WHERE kind = 'entities' ORDER BY version").fetchall()
    assert rows == [(1, MODEL), (2, "fp-new")]
    # a crashed re-annotation (entities committed, no commits row) changes nothing
    crash_before_commits(output, spec, "r3", label_sets=((LABEL_SET, "fp-crash"),), parse_version=1, entity_version=3)
    con = views.connect(root)
    assert con.execute("SELECT count(*) FROM entities WHERE model = 'fp-crash'").fetchall() == [(0,)]
    assert con.execute("SELECT DISTINCT model FROM current_entities").fetchall() == [("fp-new",)]


def test_commit_order_does_not_matter(tmp_path):
    """Same inputs committed in two different orders: identical current views."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    build_scenario(a)
    output = Output(b)
    for spec in sorted(scenario_inputs(), key=lambda s: s.input):
        write_input(output, spec, run_id="r")
    q = "SELECT doc_id, input, position FROM current_documents ORDER BY ALL"
    assert views.connect(a).execute(q).fetchall() == views.connect(b).execute(q).fetchall()


def test_empty_tables_give_typed_empty_views(tmp_path):
    root = str(tmp_path / "o")
    write_input(Output(root), InputSpec("pubmed", "pubmed26n0001", docs=[pm(1, "pubmed26n0001", 0, "A title.")]), "r1", label_sets=())
    con = views.connect(root)
    for table in ("deletions", "errors", "entities"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        assert cols == views.view_columns(table)
        assert set(cols) == set(TABLES[table].names) | {"source", "input"}
    assert con.execute("SELECT count(*) FROM current_entities").fetchall() == [(0,)]
    assert _current(con) == {"pubmed:1": "pubmed26n0001"}


def test_view_columns_users_can_guess(scenario_root):
    con = views.connect(scenario_root)

    def cols(v):
        return {r[0] for r in con.execute(f"DESCRIBE {v}").fetchall()}

    assert {"doc_id", "source", "pmid", "version", "pmcid", "year"} <= cols("documents") == cols("current_documents")
    assert {"doc_id", "section", "text"} <= cols("passages") == cols("current_passages")
    assert {"doc_id", "label", "text", "score", "start", "end"} <= cols("entities") == cols("current_entities")
    assert {"source_file", "reason"} <= cols("errors")
    assert con.execute("SELECT source, input, reason, record_id FROM errors").fetchall() == [
        ("pubmed", "pubmed26n0003", "book_article", "pubmed:1234")
    ]
    m = con.execute("SELECT source, input, status FROM commits WHERE kind = 'parse' ORDER BY source, input").fetchall()
    assert len(m) == 7 and all(r[2] == "committed" for r in m)
    ls = con.execute("SELECT DISTINCT label_set, model FROM commits WHERE kind = 'entities'").fetchall()
    assert ls == [("test@1", "fp-test")]
    assert {r[0] for r in con.execute("DESCRIBE commits").fetchall()} >= {"unit_id", "version", "kind", "committed_at"}


def test_no_commits_is_a_clear_error(tmp_path):
    with pytest.raises(NoCommitsError, match="does not exist"):
        views.connect(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoCommitsError, match="has no committed units"):
        views.connect(str(tmp_path / "empty"))
    # data committed, commits row missing: still nothing committed
    crash_before_commits(Output(str(tmp_path / "crashed")), CRASHED, "r")
    with pytest.raises(NoCommitsError, match="has no committed units"):
        views.connect(str(tmp_path / "crashed"))


def test_s3_root_same_results(s3_bucket, tmp_path):
    root = s3_bucket + "/out"
    build_scenario(root)
    con = views.connect(root)
    assert _current(con) == EXPECTED_CURRENT
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(len(_all_mentions()),)]
    assert con.execute("SELECT count(*) FROM deletions").fetchall() == [(5,)]
    assert con.execute("SELECT count(*) FROM documents WHERE run_id LIKE 'run-crashed%'").fetchall() == [(0,)]
    local = str(tmp_path / "local")
    build_scenario(local)
    q = "SELECT * FROM current_entities ORDER BY ALL"
    assert views.connect(local).execute(q).fetchall() == con.execute(q).fetchall()


# ----------------------------------------------------------------------- SQL text for other engines

_CURRENT_Q = "SELECT doc_id, input FROM current_documents ORDER BY doc_id"


def test_duckdb_views_text_runs_in_a_fresh_duckdb(scenario_root):
    snap = views.snapshot(Output(scenario_root))
    sql = views.views_sql(snap, "duckdb")
    con = duckdb.connect()
    con.execute(sql)
    assert dict(con.execute(_CURRENT_Q).fetchall()) == EXPECTED_CURRENT
    ref = views.connect(scenario_root)
    for v in ("documents", "passages", "entities", "deletions", "current_entities", "biogliner_input_order"):
        q = f"SELECT * FROM {v} ORDER BY ALL"
        assert con.execute(q).fetchall() == ref.execute(q).fetchall(), v
    q = "SELECT unit_id, version, kind, run_id FROM commits ORDER BY ALL"
    assert con.execute(q).fetchall() == ref.execute(q).fetchall()


def _emulate_delta_tables(con, root: str):
    """Stand-ins for the engines' registered Delta tables: every file in each table's Delta log
    (the crashed runs' files included, as Trino/Athena/Spark would read them), partition columns
    included, and the commits table."""
    import deltalake

    for table in (*views.BASE_VIEWS, "commits"):
        con.register(f"biogliner_{table}_files", deltalake.DeltaTable(f"{root}/{table}").to_pyarrow_table())


def _run_views_in_duckdb(con, sql: str) -> None:
    for stmt in sql.split(";\n"):
        body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
        if not body.startswith("CREATE OR REPLACE VIEW"):
            continue  # engine DDL (registering the Delta tables)
        con.execute(body.replace("`", '"'))


@pytest.mark.parametrize("dialect", ["trino", "athena", "spark"])
def test_other_engine_views_resolve_the_same(scenario_root, dialect):
    """The view statements for Trino/Athena/Spark, run in DuckDB over stand-ins for the Delta
    tables that hold every committed file (crashed runs included): the views filter them out from
    the commits table and resolve the same current state as biogliner sql."""
    sql = views.views_sql(views.snapshot(Output(scenario_root)), dialect)
    assert sql.count("CREATE OR REPLACE VIEW current_documents") == 1
    if dialect == "trino":
        assert "CALL system.register_table(schema_name => 'biogliner', table_name => 'biogliner_documents_files'" in sql
    elif dialect == "athena":
        assert "CREATE EXTERNAL TABLE biogliner_documents_files" in sql and "'table_type' = 'DELTA'" in sql
    else:
        assert "CREATE TABLE IF NOT EXISTS biogliner_documents_files\nUSING DELTA" in sql and "`end`" in sql
    con = duckdb.connect()
    _emulate_delta_tables(con, scenario_root)
    _run_views_in_duckdb(con, sql)
    assert dict(con.execute(_CURRENT_Q).fetchall()) == EXPECTED_CURRENT
    n = len(_all_mentions())
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(n,)]
    ref = views.connect(scenario_root)
    for v in ("documents", "deletions", "errors", "current_entities", "current_passages", "biogliner_input_order",
              "biogliner_current_label_sets"):
        q = f"SELECT * FROM {v} ORDER BY ALL"
        assert con.execute(q).fetchall() == ref.execute(q).fetchall(), v


@pytest.mark.parametrize("dialect", ["trino", "athena", "spark"])
def test_other_engine_scripts_name_locations_not_inputs(scenario_root, dialect):
    """(d) The scripts register each Delta table by location and carry no literal input or run
    list: every helper relation is computed from the commits table."""
    sql = views.views_sql(views.snapshot(Output(scenario_root)), dialect)
    for table in (*views.BASE_VIEWS, "commits"):
        assert f"'{scenario_root}/{table}" in sql, table
    for spec in scenario_inputs():
        assert spec.input not in sql, spec.input
    assert "run-0001" not in sql and "VALUES" not in sql.upper().replace("VALUES (1)", "")


def test_other_engine_scripts_stay_valid_after_later_commits(tmp_path):
    """A script written after the first unit resolves later units too (nothing to regenerate):
    here after the whole scenario, including a non-standard PubMed name and a crashed run."""
    root = str(tmp_path / "o")
    output = Output(root)
    specs = scenario_inputs()
    write_input(output, specs[2], "first")  # night 1: every table (deletions and errors too) exists from here on
    sql = views.views_sql(views.snapshot(output), "trino")
    assert "No Delta table yet" not in sql
    for spec in specs[:2] + specs[3:]:
        write_input(output, spec, f"later-{spec.input}")
    write_input(output, InputSpec("pubmed", "pubmed-manual", docs=[pm(4, "pubmed-manual", 0, "Manual fix asthma.")],
                                  deletions=[pm_del(1, "pubmed-manual", 1)]), "manual")
    write_input(output, InputSpec("pubmed", "medline25n0900", docs=[pm(9, "medline25n0900", 0, "Old year.")]), "old")
    crash_before_commits(output, CRASHED, "crashed")
    con = duckdb.connect()
    _emulate_delta_tables(con, root)
    _run_views_in_duckdb(con, sql)
    ref = views.connect(root)
    for v in ("biogliner_input_order", "current_documents", "current_entities", "deletions"):
        q = f"SELECT * FROM {v} ORDER BY ALL"
        assert con.execute(q).fetchall() == ref.execute(q).fetchall(), v
    order = [r[0] for r in con.execute("SELECT input FROM biogliner_input_order ORDER BY file_rank").fetchall()]
    assert order[0] == "medline25n0900" and order[-1] == "pubmed-manual"
    cur = dict(con.execute(_CURRENT_Q).fetchall())
    assert cur["pubmed:4"] == "pubmed-manual" and "pubmed:1" not in cur and cur["pubmed:9"] == "medline25n0900"


def test_athena_views_use_trino_types_and_register_delta_tables(tmp_path):
    """Athena: the Delta tables are registered by location (no column list: Glue reads the Delta
    log); Trino SQL (varchar) in the views."""
    root = str(tmp_path / "o")
    write_input(Output(root), InputSpec("pubmed", "pubmed26n0001", docs=[pm(1, "pubmed26n0001", 0, "T.")]), "r1",
                label_sets=())
    sql = views.views_sql(views.snapshot(Output(root)), "athena")
    ddl, _, rest = sql.partition("CREATE OR REPLACE VIEW")
    assert f"CREATE EXTERNAL TABLE biogliner_documents_files\nLOCATION '{root}/documents/'" in ddl
    assert "`doc_id`" not in ddl and "varchar" not in ddl
    assert "biogliner_deletions_files" not in sql  # no deletions table yet: a typed empty view
    assert "-- No Delta table yet for entities, deletions, errors" in sql
    assert "AS string" not in rest and "CAST(NULL AS varchar)" in rest


def test_position_column_separates_two_occurrences_in_one_file(tmp_path):
    """Passages/entities carry the document's ``position``: a PMID twice in one file keeps only the
    later occurrence's rows current."""
    import pyarrow as pa

    from biogliner import schema
    from scenario_data import doc_rows

    assert views.follow_keys("passages")[-1] == "position"
    f = "pubmed26n0001"
    root = str(tmp_path / "o")
    docs = [pm(1, f, 0, "Early asthma."), pm(1, f, 1, "Later diabetes.")]
    passages = pa.Table.from_pylist([
        {"doc_id": "pubmed:1", "version": 1, "passage_index": 0, "section": "title", "text": d.passages[0].text,
         "run_id": "r", "position": d.position} for d in docs], schema=schema.TABLES["passages"])
    ents = pa.Table.from_pylist([
        {"doc_id": "pubmed:1", "version": 1, "passage_index": 0, "start": s, "end": e, "text": t, "label": "disease",
         "score": 0.9, "label_set": "x@1", "model": "m", "run_id": "r", "position": pos}
        for s, e, t, pos in ((6, 12, "asthma", 0), (6, 14, "diabetes", 1))], schema=schema.TABLES["entities"])
    Output(root).commit_tables("pubmed", f, "r", parse={"documents": doc_rows(docs, "r"), "passages": passages},
                               entities={"x@1": ents}, model="m")
    con = views.connect(root)
    assert con.execute("SELECT text FROM current_passages").fetchall() == [("Later diabetes.",)]
    assert con.execute("SELECT text FROM current_entities").fetchall() == [("diabetes",)]
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(2,)]


# ----------------------------------------------------------------------- as of an earlier commit


@pytest.mark.parametrize("where", ["local", "s3"])
def test_as_of_an_earlier_commits_version(tmp_path, request, where):
    """(b) As of the commits version before a revision: the earlier state, equal to a fresh root
    holding only the first unit; by version and by time."""
    import time
    from datetime import datetime, timezone

    b1, u3 = scenario_inputs()[0], scenario_inputs()[2]
    root = str(tmp_path / "o") if where == "local" else request.getfixturevalue("s3_bucket") + "/o"
    output = Output(root)
    write_input(output, b1, "r1")
    v1 = output.delta.version("commits")
    pause = 0.01 if where == "local" else 1.1  # S3 times may be whole seconds
    time.sleep(pause)
    t1 = datetime.now(timezone.utc)
    time.sleep(pause)
    write_input(output, u3, "r3")
    assert output.delta.version("commits") > v1
    alone = str(tmp_path / "alone")  # local: the same rows
    write_input(Output(alone), b1, "r1")

    q = "SELECT doc_id, input, position FROM current_documents ORDER BY ALL"
    qe = "SELECT doc_id, input, passage_index, start, text FROM current_entities ORDER BY ALL"
    latest, ref = views.connect(root), views.connect(alone)
    assert latest.execute(q).fetchall() != ref.execute(q).fetchall()
    for as_of in (v1, str(v1), t1, t1.isoformat()):
        con = views.connect(root, as_of=as_of)
        assert con.execute(q).fetchall() == ref.execute(q).fetchall(), as_of
        assert con.execute(qe).fetchall() == ref.execute(qe).fetchall(), as_of
        assert con.execute("SELECT count(*) FROM deletions").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM commits").fetchall() == [(2,)]  # parse + one label set
    snap = views.snapshot(output, v1)
    assert snap.version == v1 and snap.as_of == v1 and snap.data_as_of is not None
    assert snap.committed == (("pubmed", b1.input, "r1"),)
    # version 0 is the commits table's creation: nothing committed yet
    with pytest.raises(NoCommitsError, match="as of version 0"):
        views.snapshot(output, 0)
    with pytest.raises(NoCommitsError, match="nothing was committed as of"):
        views.snapshot(output, "2000-01-01T00:00:00Z")
    with pytest.raises(views.StoreError, match="versions are 0"):
        views.snapshot(output, 99)
    with pytest.raises(ValueError):
        views.snapshot(output, "yesterday")


def test_snapshot_contents(scenario_root):
    snap = views.snapshot(Output(scenario_root))
    assert snap.filtered and snap.as_of is None and snap.data_as_of is None
    assert snap.version == Output(scenario_root).delta.version("commits")
    assert [r[1] for r in snap.input_order] == ["pubmed26n0001", "pubmed26n0002", "pubmed26n0003", "pubmed26n0004"]
    assert len(snap.committed) == 7 and len(snap.current_label_sets) == 7 == len(snap.committed_entities)
    assert snap.files["commits"] and all("/commits/" in f for f in snap.files["commits"])


def test_sql_file_rank_matches_file_rank_key():
    """The engine scripts compute the PubMed file order in SQL from the names: the same order as
    views.file_rank_key (production year, then number; other names after, by name)."""
    names = ["pubmed26n1335", "pubmed26n0001", "pubmed25n1500", "medline16n0902", "pubmed26n10000", "pubmed26n001",
             "pubmed-manual", "zz", "medline26n0001", "pubmed99n0001", "pubmed00n0001", "Pubmed26n0002"]
    con = duckdb.connect()
    con.register("biogliner_committed", __import__("pyarrow").table(
        {"source": ["pubmed"] * len(names) + ["pmc"], "input": names + ["PMC1.1"], "run_id": ["r"] * (len(names) + 1)}))
    d = views._Dialect("trino")
    for name, body in views._commits_relations(d, "unused"):
        if name == views.ORDER_RELATION:
            con.execute(f"CREATE VIEW {name} AS {body}")
    got = [r[0] for r in con.execute("SELECT input FROM biogliner_input_order ORDER BY file_rank").fetchall()]
    assert got == sorted(names, key=views._order_key)
    assert got[:4] == ["pubmed00n0001", "medline16n0902", "pubmed25n1500", "medline26n0001"]
    assert got[-4:] == ["Pubmed26n0002", "pubmed-manual", "pubmed26n001", "zz"]
    ranks = [r[0] for r in con.execute("SELECT file_rank FROM biogliner_input_order ORDER BY file_rank").fetchall()]
    assert ranks == list(range(len(names)))
