"""SQL views over the committed files of an output root, and their definitions for other engines.

Read-time resolution: nothing is rewritten when PubMed revises or deletes a citation. Every
occurrence stays in ``documents``/``passages``/``entities`` (the history); the ``current_*`` views
pick, per PubMed citation, the latest event in NLM replay order:

    order of an event = (file order of its input, record before deletion, position in file)

where the file order is :func:`biogliner.sources.pubmed_file_order` (baseline, then update files
ascending; a later production year's files after all of the previous year's). The latest event
wins: a record makes that occurrence current, a ``DeleteCitation`` removes the citation (so a
deletion in file N removes the occurrences from files <= N, and a re-add after it wins again).
The order is the *file* order, never the commit order: nightly runs may commit inputs in any
order and the views stay the same. PMC: per ``pmcid``, the highest version that no deletion
names wins (ties: the later input name, then position). PubMed and PMC documents are never
merged: a paper in both appears once per source.

Only files named by the manifest are read (:meth:`Store.committed_files`), so a crashed run's
leftovers are never visible. Local roots are read with DuckDB's ``read_parquet`` (hive
partitioning); object-store roots through ``pyarrow.dataset`` registered in DuckDB (no DuckDB
extension is downloaded). :func:`views_sql` writes the same definitions for DuckDB, Trino,
Athena and Spark SQL over the same hive-partitioned Parquet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from biogliner import io
from biogliner.schema import PARTITION_FIELDS, TABLES
from biogliner.store import layout
from biogliner.store.manifest import ManifestEntry, Store, StoreError

log = logging.getLogger(__name__)

BASE_VIEWS = ("documents", "passages", "entities", "deletions", "errors")
CURRENT_VIEWS = ("current_documents", "current_passages", "current_entities")
META_VIEWS = ("manifest", "manifest_label_sets")
VIEWS = BASE_VIEWS + CURRENT_VIEWS + META_VIEWS
DIALECTS = ("duckdb", "trino", "athena", "spark")
TRINO_SCHEMA = "biogliner"  # the schema the Trino statements assume (USE <catalog>.biogliner)


class NoManifestError(StoreError):
    """The URL is not an output root with committed inputs."""


# --------------------------------------------------------------------------- what is visible


@dataclass(frozen=True)
class Snapshot:
    """The committed state of an output root: everything the views are built from."""

    root_url: str
    local: bool
    entries: tuple[ManifestEntry, ...]
    files: dict[str, list[str]]  # table -> paths (local) or URLs of the committed Parquet files
    input_order: tuple[tuple[str, str, int], ...]  # (source, input partition, file rank), PubMed
    committed: tuple[tuple[str, str, str], ...] = ()  # (source, input, run_id) of parse tables
    committed_entities: tuple[tuple[str, str, str, str], ...] = ()  # (source, input, label_set, run_id), history included
    current_label_sets: tuple[tuple[str, str, str, str], ...] = ()  # the same, current commits only
    warnings: tuple[str, ...] = field(default=())


def file_rank_key(input_partition: str) -> tuple:
    """Sort key of a PubMed input in NLM replay order; names that are not ``pubmedYYnNNNN`` /
    ``medlineYYnNNNN`` sort after every standard name, by name (and are reported)."""
    from biogliner.sources import pubmed_file_order

    try:
        return (0, *pubmed_file_order(input_partition), "")
    except ValueError:
        return (1, 0, 0, input_partition)


def snapshot(store: Store) -> Snapshot:
    """Read the manifest once and resolve what each view reads."""
    entries = tuple(store.entries())
    if not entries:
        try:
            exists = store.fs.exists(store.root)
        except OSError:
            exists = False
        what = "has no commit records" if exists else "does not exist"
        raise NoManifestError(
            f"{store.root_url} {what}: no {layout.MANIFEST_DIR}/ entries; expected the output root of "
            "`biogliner annotate` / `biogliner nightly` with at least one committed input"
        )
    files: dict[str, list[str]] = {}
    for table in TABLES:
        rels = store.committed_relpaths(table, list(entries))
        files[table] = [store.path(r) if store.local else store.url(r) for r in rels]
    pubmed = sorted({layout.safe_name(e.input) for e in entries if e.source == "pubmed"}, key=file_rank_key)
    odd = [n for n in pubmed if file_rank_key(n)[0] == 1]
    warnings = ()
    if odd:
        warnings = (
            f"{len(odd)} PubMed input(s) without a pubmedYYnNNNN name (e.g. {odd[0]!r}) are ordered after all "
            "standard files, by name, when resolving current documents",
        )
    order = tuple(("pubmed", name, rank) for rank, name in enumerate(pubmed))
    committed = tuple(
        sorted({(e.source, layout.safe_name(e.input), e.parse.run_id) for e in entries if e.parse.files})
    )
    current_label_sets = tuple(
        sorted(
            (e.source, layout.safe_name(e.input), ls_id, ls.run_id)
            for e in entries
            for ls_id, ls in e.label_sets.items()
            if ls.files
        )
    )
    superseded = {
        (e.source, layout.safe_name(e.input), ls_id, ls.run_id)
        for e in entries
        for ls_id, commits in e.superseded.items()
        for ls in commits
        if ls.files
    }
    committed_entities = tuple(sorted(set(current_label_sets) | superseded))
    return Snapshot(
        root_url=store.root_url,
        local=store.local,
        entries=entries,
        files=files,
        input_order=order,
        committed=committed,
        committed_entities=committed_entities,
        current_label_sets=current_label_sets,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- SQL text


def view_columns(table: str) -> list[str]:
    """Column order of a view: doc_id, source, the table's columns, input."""
    names = [n for n in TABLES[table].names]
    lead = ["doc_id", "source"] if "doc_id" in names else ["source"]
    return lead + [n for n in names if n not in lead] + ["input"]


def full_schema(table: str) -> pa.Schema:
    """The table's schema plus the partition columns (source, input)."""
    schema = TABLES[table]
    return pa.schema(list(schema) + list(PARTITION_FIELDS), metadata=schema.metadata)


_TYPES = {
    "duckdb": {"string": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER", "float": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN"},
    "trino": {"string": "varchar", "int64": "bigint", "int32": "integer", "float": "real", "double": "double", "bool": "boolean"},
    "athena": {"string": "string", "int64": "bigint", "int32": "int", "float": "float", "double": "double", "bool": "boolean"},
    "spark": {"string": "STRING", "int64": "BIGINT", "int32": "INT", "float": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN"},
}


def _type(t: pa.DataType, dialect: str) -> str:
    types = _TYPES[dialect]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return types["string"]
    for pred, key in ((pa.types.is_int64, "int64"), (pa.types.is_int32, "int32"), (pa.types.is_float32, "float"),
                      (pa.types.is_float64, "double"), (pa.types.is_boolean, "bool")):
        if pred(t):
            return types[key]
    raise TypeError(f"no SQL type for {t}")


class _Dialect:
    def __init__(self, name: str):
        if name not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {name!r}; expected one of {', '.join(DIALECTS)}")
        self.name = name
        # Athena: Hive DDL for tables, but queries and views run on Trino (no `string` type there)
        self.types = "trino" if name == "athena" else name

    def q(self, ident: str) -> str:
        return f"`{ident}`" if self.name == "spark" else f'"{ident}"'

    def lit(self, value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    def values(self, rows, columns: list[tuple[str, str]]) -> str:
        """A SELECT of literal rows; ``columns`` = [(name, sql type)]. Empty -> typed, no rows."""
        cols = ", ".join(self.q(c) for c, _ in columns)
        if not rows:
            sel = ", ".join(f"CAST(NULL AS {t}) AS {self.q(c)}" for c, t in columns)
            return f"SELECT {sel} FROM {self.one_row} WHERE 1 = 0"
        body = ",\n    ".join("(" + ", ".join(self.lit(v) for v in r) + ")" for r in rows)
        if self.name == "spark":
            return f"SELECT * FROM VALUES\n    {body}\n  AS v({cols})"
        return f"SELECT * FROM (VALUES\n    {body}\n  ) AS v({cols})"

    def empty(self, table: str) -> str:
        schema = full_schema(table)
        sel = ", ".join(f"CAST(NULL AS {_type(schema.field(c).type, self.types)}) AS {self.q(c)}" for c in view_columns(table))
        return f"SELECT {sel} FROM {self.one_row} WHERE 1 = 0"

    @property
    def one_row(self) -> str:
        return "VALUES (1) AS one(x)" if self.name == "spark" else "(VALUES (1)) AS one(x)"


def _base_select(d: _Dialect, table: str, relation: str) -> str:
    """``relation`` names its rows ``t`` (``<source> AS t`` or ``<table> t JOIN ...``)."""
    cols = ", ".join(f"t.{d.q(c)}" for c in view_columns(table))
    return f"SELECT {cols}\nFROM {relation}"


def follow_keys(table: str) -> list[str]:
    """How a passage/entity row finds its document occurrence: (source, doc_id, input), plus the
    document's ``position`` in its file when the table carries it. Without it, a PMID that occurs
    twice in ONE input file has both occurrences' passages/entities in the current views."""
    keys = ["source", "doc_id", "input"]
    if "position" in TABLES[table].names:
        keys.append("position")
    return keys


def _current_sql(d: _Dialect, order_relation: str) -> dict[str, str]:
    """Bodies of the current_* views over the base views (portable SQL)."""
    q = d.q
    docs_cols = ", ".join(f"d.{q(c)}" for c in view_columns("documents"))
    pubmed = f"""WITH events AS (
    SELECT {q('doc_id')}, {q('input')}, {q('position')}, 0 AS {q('kind')} FROM documents WHERE {q('source')} = 'pubmed'
    UNION ALL
    SELECT {q('doc_id')}, {q('input')}, {q('position')}, 1 AS {q('kind')} FROM deletions WHERE {q('source')} = 'pubmed'
  ),
  ranked AS (
    SELECT e.{q('doc_id')}, e.{q('input')}, e.{q('position')}, e.{q('kind')},
      ROW_NUMBER() OVER (PARTITION BY e.{q('doc_id')}
                         ORDER BY o.{q('file_rank')} DESC, e.{q('kind')} DESC, e.{q('position')} DESC) AS {q('rn')}
    FROM events e JOIN {order_relation} o ON o.{q('source')} = 'pubmed' AND o.{q('input')} = e.{q('input')}
  ),
  pmc AS (
    SELECT d.{q('doc_id')}, d.{q('input')}, d.{q('position')},
      ROW_NUMBER() OVER (PARTITION BY COALESCE(d.{q('pmcid')}, d.{q('doc_id')})
                         ORDER BY d.{q('version')} DESC NULLS LAST, d.{q('input')} DESC, d.{q('position')} DESC) AS {q('rn')}
    FROM documents d
    WHERE d.{q('source')} = 'pmc'
      AND NOT EXISTS (SELECT 1 FROM deletions x WHERE x.{q('source')} = 'pmc' AND x.{q('doc_id')} = d.{q('doc_id')})
  ),
  winners AS (
    SELECT 'pubmed' AS {q('source')}, {q('doc_id')}, {q('input')}, {q('position')} FROM ranked WHERE {q('rn')} = 1 AND {q('kind')} = 0
    UNION ALL
    SELECT 'pmc' AS {q('source')}, {q('doc_id')}, {q('input')}, {q('position')} FROM pmc WHERE {q('rn')} = 1
  )
SELECT {docs_cols}
FROM documents d JOIN winners w
  ON d.{q('source')} = w.{q('source')} AND d.{q('doc_id')} = w.{q('doc_id')}
 AND d.{q('input')} = w.{q('input')} AND d.{q('position')} = w.{q('position')}"""

    def follow(table: str) -> str:
        cols = ", ".join(f"t.{q(c)}" for c in view_columns(table))
        on = " AND ".join(f"t.{q(k)} = c.{q(k)}" for k in follow_keys(table))
        return f"SELECT {cols}\nFROM {table} t JOIN current_documents c\n  ON {on}"

    # entities: only each (input, label set)'s current commit; rows that --reannotate replaced
    # (another model or label-set content) stay in `entities`, the history, never here
    on_ls = " AND ".join(f"t.{q(k)} = l.{q(k)}" for k in ("source", "input", "label_set", "run_id"))
    entities = follow("entities") + f"\nJOIN {LABEL_SETS_RELATION} l\n  ON {on_ls}"
    return {"current_documents": pubmed, "current_passages": follow("passages"), "current_entities": entities}


LABEL_SETS_RELATION = "biogliner_current_label_sets"
_LABEL_SET_COLUMNS = ("source", "input", "label_set", "run_id")


def _label_sets_relation(d: _Dialect, snap: Snapshot) -> str:
    s = _TYPES[d.types]["string"]
    return d.values(snap.current_label_sets, [(c, s) for c in _LABEL_SET_COLUMNS])


def _order_relation(d: _Dialect, snap: Snapshot) -> str:
    t = _TYPES[d.types]
    return d.values(snap.input_order, [("source", t["string"]), ("input", t["string"]), ("file_rank", t["int64"])])


def statements(snap: Snapshot, dialect: str, base: Callable[[str], str | None], *, order_relation: str | None = None) -> list[tuple[str, str]]:
    """(view name, CREATE VIEW statement) for every data view. ``base(table)`` gives the FROM
    relation of a base table, or None when nothing is committed for it (typed empty view)."""
    d = _Dialect(dialect)
    out: list[tuple[str, str]] = []
    for table in BASE_VIEWS:
        rel = base(table)
        body = d.empty(table) if rel is None else _base_select(d, table, rel)
        out.append((table, f"CREATE OR REPLACE VIEW {table} AS\n{body}"))
    order = order_relation or _order_relation(d, snap)
    if order_relation is None:  # a script: the helper relations are views of literal rows
        out.append(("biogliner_input_order", f"CREATE OR REPLACE VIEW biogliner_input_order AS\n{order}"))
        order = "biogliner_input_order"
        out.append((LABEL_SETS_RELATION, f"CREATE OR REPLACE VIEW {LABEL_SETS_RELATION} AS\n{_label_sets_relation(d, snap)}"))
    for name, body in _current_sql(d, order).items():
        out.append((name, f"CREATE OR REPLACE VIEW {name} AS\n{body}"))
    return out


def _duckdb_read(d: _Dialect, files: list[str]) -> str:
    listing = ",\n    ".join(d.lit(f) for f in files)
    return (
        f"read_parquet([\n    {listing}\n  ], hive_partitioning = true,"
        " hive_types = {'source': 'VARCHAR', 'input': 'VARCHAR'})"
    )


def _external_location(snap: Snapshot, table: str, dialect: str) -> str:
    url = io.join(snap.root_url, table)
    if dialect == "spark" and url.startswith("s3://"):
        url = "s3a://" + url[len("s3://"):]
    return url


def _files_table(table: str) -> str:
    return f"biogliner_{table}_files"


def views_sql(snap: Snapshot, dialect: str = "duckdb") -> str:
    """The view definitions as a SQL script for ``dialect`` (see the module docstring)."""
    d = _Dialect(dialect)
    head = [
        f"-- biogliner views over {snap.root_url} ({dialect}); {len(snap.entries)} committed inputs.",
        "-- A snapshot of the manifest: regenerate after each run (biogliner sql --output URL --views).",
    ]
    pre: list[str] = []
    if dialect == "duckdb":
        if not snap.local:
            head.append("-- Reading s3:// from DuckDB needs the httpfs extension (INSTALL httpfs; LOAD httpfs;).")

        def base(table: str) -> str | None:
            files = snap.files[table]
            return _duckdb_read(d, files) + " AS t" if files else None
    else:
        if dialect == "trino":
            head.append(f"-- Trino (Hive connector): run in schema {TRINO_SCHEMA!r} (USE <catalog>.{TRINO_SCHEMA};).")
        head.append(
            "-- External tables list every file under the table folders; the views keep only rows of committed "
            "runs, so files of crashed runs (see `gc`) are never seen."
        )
        s = _TYPES[d.types]["string"]
        pre.append(
            "CREATE OR REPLACE VIEW biogliner_committed AS\n"
            + d.values(snap.committed, [("source", s), ("input", s), ("run_id", s)])
        )
        pre.append(
            "CREATE OR REPLACE VIEW biogliner_committed_entities AS\n"
            + d.values(snap.committed_entities, [("source", s), ("input", s), ("label_set", s), ("run_id", s)])
        )
        ddl = [s for table in BASE_VIEWS if snap.files[table] for s in _external_table_ddl(d, snap, table)]
        pre[:0] = ddl

        def base(table: str) -> str | None:
            if not snap.files[table]:
                return None
            q = d.q
            keys = ["source", "input", "run_id"] + (["label_set"] if table == "entities" else [])
            on = " AND ".join(f"t.{q(k)} = c.{q(k)}" for k in keys)
            committed = "biogliner_committed_entities" if table == "entities" else "biogliner_committed"
            return f"{_files_table(table)} t JOIN {committed} c ON {on}"

    stmts = pre + [s for _, s in statements(snap, dialect, base)]
    return "\n".join(head) + "\n\n" + ";\n\n".join(stmts) + ";\n"


def _external_table_ddl(d: _Dialect, snap: Snapshot, table: str) -> list[str]:
    schema = TABLES[table]
    name = _files_table(table)
    loc = _external_location(snap, table, d.name)
    cols = ",\n  ".join(f"{d.q(f.name)} {_type(f.type, d.name)}" for f in schema)
    if d.name == "trino":
        parts = ",\n  ".join(f"{d.q(f.name)} {_type(f.type, d.name)}" for f in PARTITION_FIELDS)
        return [
            f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols},\n  {parts}\n) WITH (\n  external_location = {d.lit(loc)},\n"
            "  format = 'PARQUET',\n  partitioned_by = ARRAY['source', 'input']\n)",
            f"CALL system.sync_partition_metadata({d.lit(TRINO_SCHEMA)}, {d.lit(name)}, 'FULL')",
        ]
    if d.name == "athena":
        parts = ", ".join(f"`{f.name}` string" for f in PARTITION_FIELDS)
        cols = ",\n  ".join(f"`{f.name}` {_type(f.type, 'athena')}" for f in schema)
        return [
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n  {cols}\n) PARTITIONED BY ({parts})\n"
            f"STORED AS PARQUET LOCATION {d.lit(loc + '/')}",
            f"MSCK REPAIR TABLE {name}",
        ]
    parts = ",\n  ".join(f"{d.q(f.name)} {_type(f.type, d.name)}" for f in PARTITION_FIELDS)
    return [
        f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols},\n  {parts}\n) USING PARQUET PARTITIONED BY (`source`, `input`)\n"
        f"LOCATION {d.lit(loc)}",
        f"MSCK REPAIR TABLE {name}",
    ]


# --------------------------------------------------------------------------- DuckDB runtime


def manifest_tables(entries) -> tuple[pa.Table, pa.Table]:
    """The manifest as two tables: one row per input, one per (input, label set)."""
    rows = [
        {
            "source": e.source,
            "input": e.input,
            "url": e.url,
            "status": e.status,
            "error": e.error,
            "run_id": e.run_id,
            "committed_at": e.committed_at,
            "size": e.size,
            "etag": e.etag,
            "md5": e.md5,
            "label_sets": sorted(e.label_sets),
            "counts": json.dumps(e.parse.counts, sort_keys=True, default=str),
        }
        for e in entries
    ]
    schema = pa.schema([("source", pa.string()), ("input", pa.string()), ("url", pa.string()), ("status", pa.string()),
                        ("error", pa.string()), ("run_id", pa.string()), ("committed_at", pa.string()),
                        ("size", pa.int64()), ("etag", pa.string()), ("md5", pa.string()),
                        ("label_sets", pa.list_(pa.string())), ("counts", pa.string())])
    def ls_row(e, ls_id, ls, current: bool) -> dict:
        return {
            "source": e.source,
            "input": e.input,
            "label_set": ls_id,
            "model": ls.model,
            "content_hash": ls.content_hash,
            "current": current,
            "run_id": ls.run_id,
            "committed_at": ls.committed_at,
            "counts": json.dumps(ls.counts, sort_keys=True, default=str),
        }

    ls_rows = [
        row
        for e in entries
        for row in [ls_row(e, i, ls, True) for i, ls in sorted(e.label_sets.items())]
        + [ls_row(e, i, ls, False) for i, commits in sorted(e.superseded.items()) for ls in commits]
    ]
    ls_schema = pa.schema([("source", pa.string()), ("input", pa.string()), ("label_set", pa.string()),
                           ("model", pa.string()), ("content_hash", pa.string()), ("current", pa.bool_()),
                           ("run_id", pa.string()), ("committed_at", pa.string()), ("counts", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema), pa.Table.from_pylist(ls_rows, schema=ls_schema)


def register(con, store: Store, snap: Snapshot | None = None) -> Snapshot:
    """Create every view of ``store`` in the DuckDB connection ``con``; returns the snapshot."""
    snap = snap or snapshot(store)
    for w in snap.warnings:
        log.warning("%s", w)
    order = pa.table(
        {
            "source": pa.array([r[0] for r in snap.input_order], pa.string()),
            "input": pa.array([r[1] for r in snap.input_order], pa.string()),
            "file_rank": pa.array([r[2] for r in snap.input_order], pa.int64()),
        }
    )
    con.register("biogliner_input_order", order)
    con.register(
        LABEL_SETS_RELATION,
        pa.table({c: pa.array([r[i] for r in snap.current_label_sets], pa.string()) for i, c in enumerate(_LABEL_SET_COLUMNS)}),
    )
    d = _Dialect("duckdb")
    if snap.local:

        def base(table: str) -> str | None:
            files = snap.files[table]
            return _duckdb_read(d, files) + " AS t" if files else None
    else:
        import pyarrow.dataset as ds

        pafs, _ = io.pyarrow_filesystem(store.root_url, store.storage_options)

        def base(table: str) -> str | None:
            files = snap.files[table]
            if not files:
                return None
            paths = [io.filesystem(f, store.storage_options)[1] for f in files]
            dataset = ds.dataset(
                paths,
                schema=full_schema(table),
                format="parquet",
                filesystem=pafs,
                partitioning=ds.partitioning(pa.schema(PARTITION_FIELDS), flavor="hive"),
                partition_base_dir=f"{store.root}/{table}",
            )
            con.register(_files_table(table), dataset)
            return f"{_files_table(table)} AS t"

    for _, stmt in statements(snap, "duckdb", base, order_relation="biogliner_input_order"):
        con.execute(stmt)
    manifest, label_sets = manifest_tables(snap.entries)
    con.register("manifest", manifest)
    con.register("manifest_label_sets", label_sets)
    return snap


def connect(output: str, storage_options: dict | None = None, *, con=None):
    """A DuckDB connection (in memory unless ``con`` is given) with every view of ``output``."""
    import duckdb

    store = Store(output, storage_options)
    con = con if con is not None else duckdb.connect()
    register(con, store)
    return con
