"""Read-time resolution of revisions and deletions, over committed files only."""

from __future__ import annotations

import duckdb
import pytest

from biogliner.schema import TABLES
from biogliner.store import views
from biogliner.store.manifest import Store

from scenario_data import EXPECTED_CURRENT, VOCAB, build_scenario, find_mentions, scenario_inputs


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
    store = Store(scenario_root)
    assert store.garbage(), "the fixture leaves crashed-run files behind"
    con = views.connect(scenario_root)
    assert con.execute("SELECT count(*) FROM documents WHERE run_id LIKE 'run-crashed%'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM documents WHERE input = 'pubmed26n0005'").fetchall() == [(0,)]
    # the uncommitted night 3 deletes pubmed:4: not applied
    assert "pubmed:4" in _current(con)


def test_commit_order_does_not_matter(tmp_path):
    """Same inputs committed in two different orders: identical current views."""
    from scenario_data import write_input

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    build_scenario(a)
    store = Store(b)
    for spec in sorted(scenario_inputs(), key=lambda s: s.input):
        write_input(store, spec, run_id="r")
    q = "SELECT doc_id, input, position FROM current_documents ORDER BY ALL"
    assert views.connect(a).execute(q).fetchall() == views.connect(b).execute(q).fetchall()


def test_empty_tables_give_typed_empty_views(tmp_path):
    from scenario_data import InputSpec, pm, write_input

    root = str(tmp_path / "o")
    store = Store(root)
    write_input(store, InputSpec("pubmed", "pubmed26n0001", docs=[pm(1, "pubmed26n0001", 0, "A title.")]), "r1", label_sets=())
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
    m = con.execute("SELECT source, input, status FROM manifest ORDER BY source, input").fetchall()
    assert len(m) == 7 and all(r[2] == "committed" for r in m)
    ls = con.execute("SELECT DISTINCT label_set, model FROM manifest_label_sets").fetchall()
    assert ls == [("test@1", "fp-test")]


def test_no_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(views.NoManifestError, match="does not exist"):
        views.connect(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(views.NoManifestError, match="no commit records"):
        views.connect(str(tmp_path / "empty"))


def test_s3_root_same_results(s3_bucket):
    root = s3_bucket + "/out"
    build_scenario(root)
    con = views.connect(root)
    assert _current(con) == EXPECTED_CURRENT
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(len(_all_mentions()),)]
    assert con.execute("SELECT count(*) FROM deletions").fetchall() == [(5,)]


# ----------------------------------------------------------------------- SQL text for other engines

_CURRENT_Q = "SELECT doc_id, input FROM current_documents ORDER BY doc_id"


def test_duckdb_views_text_runs_in_a_fresh_duckdb(scenario_root):
    snap = views.snapshot(Store(scenario_root))
    sql = views.views_sql(snap, "duckdb")
    con = duckdb.connect()
    con.execute(sql)
    assert dict(con.execute(_CURRENT_Q).fetchall()) == EXPECTED_CURRENT
    ref = views.connect(scenario_root)
    for v in ("documents", "passages", "entities", "deletions", "current_entities"):
        q = f"SELECT * FROM {v} ORDER BY ALL"
        assert con.execute(q).fetchall() == ref.execute(q).fetchall(), v


def _emulate_external_tables(con, root: str):
    """Stand-ins for the engines' external tables: EVERY file under the table folders (crashed
    runs included), as Trino/Athena/Spark would list them."""
    for table in views.BASE_VIEWS:
        con.execute(
            f"CREATE VIEW biogliner_{table}_files AS SELECT * FROM read_parquet('{root}/{table}/**/*.parquet', "
            "hive_partitioning = true, hive_types = {'source': 'VARCHAR', 'input': 'VARCHAR'})"
        )


@pytest.mark.parametrize("dialect", ["trino", "athena", "spark"])
def test_other_engine_views_resolve_the_same(scenario_root, dialect):
    """The view statements for Trino/Athena/Spark, run in DuckDB over stand-in external tables
    that list every file: they filter out crashed runs and resolve the same current state."""
    snap = views.snapshot(Store(scenario_root))
    sql = views.views_sql(snap, dialect)
    assert sql.count("CREATE OR REPLACE VIEW current_documents") == 1
    if dialect == "trino":
        assert "external_location" in sql and "sync_partition_metadata" in sql
    elif dialect == "athena":
        assert "CREATE EXTERNAL TABLE" in sql and "MSCK REPAIR TABLE" in sql
    else:
        assert "USING PARQUET PARTITIONED BY" in sql and "`end`" in sql
    con = duckdb.connect()
    _emulate_external_tables(con, scenario_root)
    for stmt in sql.split(";\n"):
        body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
        if not body.startswith("CREATE OR REPLACE VIEW"):
            continue  # engine DDL (external tables, partition repair)
        con.execute(body.replace("`", '"'))
    assert dict(con.execute(_CURRENT_Q).fetchall()) == EXPECTED_CURRENT
    n = len(_all_mentions())
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(n,)]
    ref = views.connect(scenario_root)
    q = "SELECT * FROM current_entities ORDER BY ALL"
    assert con.execute(q).fetchall() == ref.execute(q).fetchall()


def test_athena_views_use_trino_types_and_hive_ddl(tmp_path):
    """Athena: Hive DDL (string) for the external tables, Trino SQL (varchar) in the views."""
    from scenario_data import InputSpec, pm, write_input

    root = str(tmp_path / "o")
    write_input(Store(root), InputSpec("pubmed", "pubmed26n0001", docs=[pm(1, "pubmed26n0001", 0, "T.")]), "r1",
                label_sets=())
    sql = views.views_sql(views.snapshot(Store(root)), "athena")
    ddl, _, rest = sql.partition("CREATE OR REPLACE VIEW")
    assert "`doc_id` string" in ddl and "varchar" not in ddl
    assert "AS string" not in rest and "CAST(NULL AS varchar)" in rest  # the empty deletions/entities views


def test_position_column_separates_two_occurrences_in_one_file(tmp_path):
    """Passages/entities carry the document's ``position``: a PMID twice in one file keeps only the
    later occurrence's rows current."""
    import pyarrow as pa

    from biogliner import schema
    from biogliner.store.manifest import LabelSetCommit, ManifestEntry, ParseCommit
    from scenario_data import doc_rows, pm

    assert views.follow_keys("passages")[-1] == "position"
    f = "pubmed26n0001"
    store = Store(str(tmp_path / "o"))
    docs = [pm(1, f, 0, "Early asthma."), pm(1, f, 1, "Later diabetes.")]
    files = {
        "documents": [store.write_table("documents", "pubmed", f, "r", doc_rows(docs, "r"))],
        "passages": [store.write_table("passages", "pubmed", f, "r", pa.Table.from_pylist([
            {"doc_id": "pubmed:1", "version": 1, "passage_index": 0, "section": "title", "text": d.passages[0].text,
             "run_id": "r", "position": d.position} for d in docs], schema=schema.TABLES["passages"]))],
    }
    ents = pa.Table.from_pylist([
        {"doc_id": "pubmed:1", "version": 1, "passage_index": 0, "start": s, "end": e, "text": t, "label": "disease",
         "score": 0.9, "label_set": "x@1", "model": "m", "run_id": "r", "position": pos}
        for s, e, t, pos in ((6, 12, "asthma", 0), (6, 14, "diabetes", 1))], schema=schema.TABLES["entities"])
    rel = store.write_table("entities", "pubmed", f, "x@1-r", ents)
    store.commit(ManifestEntry(input=f, source="pubmed", url="x", status="committed", run_id="r",
                               parse=ParseCommit(run_id="r", files=files),
                               label_sets={"x@1": LabelSetCommit(run_id="r", model="m", files=[rel])}))
    con = views.connect(str(tmp_path / "o"))
    assert con.execute("SELECT text FROM current_passages").fetchall() == [("Later diabetes.",)]
    assert con.execute("SELECT text FROM current_entities").fetchall() == [("diabetes",)]
    assert con.execute("SELECT count(*) FROM entities").fetchall() == [(2,)]
