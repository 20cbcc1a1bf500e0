"""SQL views over the committed rows of an output root's Delta tables, and their definitions for other engines.

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
names wins (ties: the later input name, then position; PMC units are named so that later units
sort later). PubMed and PMC documents are never merged: a paper in both appears once per source.

What is visible (:mod:`biogliner.store.output`): every table is a Delta table, and a unit's rows
are visible only when its ``commits`` row is there. The data tables are committed before the
``commits`` row, so a run that crashed in between leaves files that ARE in the data tables' Delta
logs: every base view keeps only rows of committed runs, joining ``(source, input, run_id)`` on
``biogliner_committed`` (each unit's current parse commit) and, for entities,
``(source, input, label_set, run_id)`` on ``biogliner_committed_entities`` (every entities commit,
replaced ones included: the history). ``current_entities`` further keeps each (input, label set)'s
current commit only (``biogliner_current_label_sets``).

In DuckDB (:func:`register`, ``biogliner sql``) those relations come from the ``commits`` table
read once (:class:`Snapshot`), registered as Arrow tables; local roots are read with
``read_parquet`` over the committed files named by the Delta logs (hive partitioning: the
partition columns are in the paths, not in the files), object-store roots through
``pyarrow.dataset``. No DuckDB extension is needed. A snapshot can be taken as of an earlier
version of the ``commits`` table or a time (:func:`snapshot`).

:func:`views_sql` writes the definitions for DuckDB (literal file lists and relations: a snapshot),
and for Trino, Athena and Spark SQL, where the tables are registered as Delta tables and every
helper relation (committed runs, current label sets, the PubMed file order) is a view over the
``commits`` Delta table itself: those scripts stay valid after later runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from biogliner import io
from biogliner.schema import PARTITION_FIELDS, TABLES
from biogliner.store.delta import COMMITS, COMMITS_TABLE
from biogliner.store.output import CommitState, NoCommitsError, Output, StoreError

log = logging.getLogger(__name__)

BASE_VIEWS = ("documents", "passages", "entities", "deletions", "errors")
CURRENT_VIEWS = ("current_documents", "current_passages", "current_entities")
META_VIEWS = ("commits",)
VIEWS = BASE_VIEWS + CURRENT_VIEWS + META_VIEWS
DIALECTS = ("duckdb", "trino", "athena", "spark")
TRINO_SCHEMA = "biogliner"  # the schema the Trino statements assume (USE <catalog>.biogliner)

ORDER_RELATION = "biogliner_input_order"  # (source, input, file_rank): PubMed replay order
COMMITTED_RELATION = "biogliner_committed"  # (source, input, run_id): current parse commits
COMMITTED_ENTITIES_RELATION = "biogliner_committed_entities"  # (source, input, label_set, run_id): every entities commit
LABEL_SETS_RELATION = "biogliner_current_label_sets"  # (source, input, label_set, run_id): current entities commits
CURRENT_COMMITS_RELATION = "biogliner_current_commits"  # engine scripts: the highest version per unit_id
_LABEL_SET_COLUMNS = ("source", "input", "label_set", "run_id")
_COMMITTED_COLUMNS = ("source", "input", "run_id")

#: The PubMed file name pattern of :func:`biogliner.sources.pubmed_file_order`, for SQL regexps
#: (no backslashes: Spark string literals would need them doubled). Group 2: the production year
#: (2000 + YY), group 3: the file number.
PUBMED_NAME_SQL_REGEX = "^(pubmed|medline)([0-9]{2})n([0-9]{4,})$"

__all__ = [
    "BASE_VIEWS", "CURRENT_VIEWS", "META_VIEWS", "VIEWS", "DIALECTS", "NoCommitsError", "StoreError", "Snapshot",
    "file_rank_key", "parse_as_of", "snapshot", "register", "connect", "views_sql", "view_columns", "follow_keys",
]


# --------------------------------------------------------------------------- what is visible


@dataclass(frozen=True)
class Snapshot:
    """The committed state of an output root (latest, or as of an earlier commit): what the views read.

    ``state`` is ``None`` only for snapshots built by hand over plain files (tests, benchmarks):
    then the base views read ``files`` unfiltered.
    """

    root_url: str
    local: bool
    files: dict[str, list[str]]  # table -> paths (local) or URLs of the files in its Delta log ("commits" included)
    input_order: tuple[tuple[str, str, int], ...] = ()  # (source, input partition, file rank), PubMed
    committed: tuple[tuple[str, str, str], ...] = ()  # (source, input, run_id) of the current parse commits
    committed_entities: tuple[tuple[str, str, str, str], ...] = ()  # (source, input, label_set, run_id), history included
    current_label_sets: tuple[tuple[str, str, str, str], ...] = ()  # the same, current commits only
    warnings: tuple[str, ...] = field(default=())
    state: CommitState | None = None  # the commits table as read (state.version: its Delta version)
    as_of: int | datetime | None = None  # what was asked for: None (latest), a commits version or a time
    data_as_of: datetime | None = None  # the time the data tables were read at (None: their latest versions)
    tables: tuple[str, ...] = ()  # the Delta tables that exist (for the engine scripts; empty ones included)

    @property
    def filtered(self) -> bool:
        """Whether the base views keep only rows of committed runs (always, unless built by hand)."""
        return self.state is not None

    @property
    def version(self) -> int | None:
        """The ``commits`` table version this snapshot reads."""
        return None if self.state is None else self.state.version


def file_rank_key(input_partition: str) -> tuple:
    """Sort key of a PubMed input in NLM replay order; names that are not ``pubmedYYnNNNN`` /
    ``medlineYYnNNNN`` sort after every standard name, by name (and are reported)."""
    from biogliner.sources import pubmed_file_order

    try:
        return (0, *pubmed_file_order(input_partition), "")
    except ValueError:
        return (1, 0, 0, input_partition)


def _order_key(name: str) -> tuple:
    # ties (pubmed26n0001 and medline26n0001): by name, as the engine scripts' ROW_NUMBER does
    return (file_rank_key(name), name)


def parse_as_of(value: int | str | datetime | None) -> int | datetime | None:
    """``None``, a version of the ``commits`` table (an int, or a string of digits) or a time
    (a ``datetime`` or an ISO-8601 string such as ``2026-12-05T23:00:00Z``; a time without a
    zone is taken as UTC). Raises ``ValueError`` for anything else."""
    if value is None or isinstance(value, datetime):
        return _utc(value) if value is not None else None
    if isinstance(value, bool):
        raise ValueError(f"not a version or a time: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a commits-table version is >= 0, got {value}")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        if not text or text.lstrip("+-").isdigit():
            raise ValueError(text)
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a commits-table version (an integer) or an ISO-8601 time (e.g. 2026-12-05T23:00:00Z): {value!r}"
        ) from None
    return _utc(ts)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _delta_table(output: Output, table: str):
    from deltalake import DeltaTable

    from biogliner.store.delta import delta_storage_options

    opts = delta_storage_options(output.root_url, output.storage_options)
    return DeltaTable(output.delta.table_uri(table), storage_options=opts or None)


def _version_time(output: Output, version: int) -> datetime:
    """When version ``version`` of the commits table was committed, as Delta time travel by
    timestamp sees it: the modification time of its log file (delta-rs resolves
    ``load_as_version(datetime)`` by log-file modification times). A time reported to the whole
    second (S3's HEAD) is taken as the end of that second; a log file gone (log cleanup after a
    checkpoint) falls back to the commit's ``commitInfo`` timestamp."""
    fs, base = io.filesystem(output.url(COMMITS_TABLE), output.storage_options)
    path = f"{base.rstrip('/')}/_delta_log/{version:020d}.json"
    try:
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        info = None
    if info is not None:
        for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
            v = info.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                # round up to the microsecond: the data commits before it must stay <= it
                return datetime.fromtimestamp(math.ceil(v * 1e6) / 1e6, timezone.utc)
            if isinstance(v, datetime):
                v = _utc(v)
                if v.microsecond == 0:
                    v = v + timedelta(seconds=1) - timedelta(microseconds=1)
                return v
    for h in _delta_table(output, COMMITS_TABLE).history():
        if int(h.get("version", -1)) == version and h.get("timestamp") is not None:
            return datetime.fromtimestamp(int(h["timestamp"]) / 1000, timezone.utc) + timedelta(microseconds=999)
    raise StoreError(f"{output.root_url}: cannot tell when version {version} of the {COMMITS_TABLE} table was committed")


def _resolve(output: Output, as_of: int | datetime | None) -> tuple[int, datetime | None]:
    """(commits-table version to read, time to read the data tables at; None: their latest)."""
    from deltalake.exceptions import DeltaError, TableNotFoundError

    latest = output.delta.version(COMMITS_TABLE)
    if latest is None:
        output.require_commits(None)  # raises NoCommitsError with the usual message
        raise NoCommitsError(f"{output.root_url}: no {COMMITS_TABLE} table")  # pragma: no cover
    if as_of is None:
        return latest, None
    if isinstance(as_of, int):
        if as_of > latest:
            raise StoreError(
                f"{output.root_url}: no version {as_of} of the {COMMITS_TABLE} table (its versions are 0..{latest})"
            )
        return as_of, _version_time(output, as_of)
    try:
        dt = _delta_table(output, COMMITS_TABLE)
        dt.load_as_version(as_of)
    except (TableNotFoundError, DeltaError, ValueError) as e:
        raise StoreError(f"{output.root_url}: cannot read the {COMMITS_TABLE} table as of {as_of.isoformat()}: {e}") from None
    return dt.version(), as_of


def snapshot(output: Output, as_of: int | str | datetime | None = None) -> Snapshot:
    """Read the ``commits`` table once and resolve what each view reads.

    ``as_of``: ``None`` (the latest commit), a version ``V`` of the ``commits`` table, or a time
    (a ``datetime`` or an ISO-8601 string). As of ``V``, the commits table is read at ``V`` and
    every data table as of the time ``V`` was committed: the data tables are committed before
    the ``commits`` row, so they hold at least what ``V`` names, and the committed-runs filter
    hides anything later. As of a time ``T``, every table is read as of ``T``. Raises
    :class:`NoCommitsError` when nothing is committed (as of then), :class:`StoreError` for a
    version or time the tables cannot be read at, ``ValueError`` for a malformed ``as_of``.
    """
    from deltalake.exceptions import TableNotFoundError

    as_of = parse_as_of(as_of)
    version, data_ts = _resolve(output, as_of)
    try:
        state = output.require_commits(version)
    except NoCommitsError as e:
        if as_of is None:
            raise
        raise NoCommitsError(
            f"{output.root_url}: nothing was committed as of {_as_of_text(as_of)} ({COMMITS_TABLE} table version {version})"
        ) from e
    state = replace(state, version=version)
    files: dict[str, list[str]] = {}
    for table in (*TABLES, COMMITS_TABLE):
        at = version if table == COMMITS_TABLE else data_ts
        try:
            files[table] = output.files(table, at)
        except TableNotFoundError:  # the table did not exist then
            files[table] = []
    fs, base = io.filesystem(output.root_url, output.storage_options)
    tables = tuple(t for t in files if files[t] or _exists(fs, f"{base.rstrip('/')}/{t}/_delta_log"))
    pubmed = sorted({i for s, i, _ in state.committed_runs() if s == "pubmed"}, key=_order_key)
    odd = [n for n in pubmed if file_rank_key(n)[0] == 1]
    warnings = ()
    if odd:
        warnings = (
            f"{len(odd)} PubMed input(s) without a pubmedYYnNNNN name (e.g. {odd[0]!r}) are ordered after all "
            "standard files, by name, when resolving current documents",
        )
    return Snapshot(
        root_url=output.root_url,
        local=output.local,
        files=files,
        input_order=tuple(("pubmed", name, rank) for rank, name in enumerate(pubmed)),
        committed=tuple(state.committed_runs()),
        committed_entities=tuple(state.entity_history()),
        current_label_sets=tuple(state.current_label_sets()),
        warnings=warnings,
        state=state,
        as_of=as_of,
        data_as_of=data_ts,
        tables=tables,
    )


def _exists(fs, path: str) -> bool:
    try:
        return bool(fs.exists(path))
    except OSError:
        return False


def _as_of_text(as_of) -> str:
    return as_of.isoformat() if isinstance(as_of, datetime) else f"version {as_of}"


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


def _literal_relations(d: _Dialect, snap: Snapshot) -> list[tuple[str, str]]:
    """The helper relations as views of literal rows (the DuckDB script: a snapshot)."""
    t = _TYPES[d.types]
    s = t["string"]
    out = [(ORDER_RELATION, d.values(snap.input_order, [("source", s), ("input", s), ("file_rank", t["int64"])]))]
    if snap.filtered:
        out.append((COMMITTED_RELATION, d.values(snap.committed, [(c, s) for c in _COMMITTED_COLUMNS])))
        out.append((COMMITTED_ENTITIES_RELATION, d.values(snap.committed_entities, [(c, s) for c in _LABEL_SET_COLUMNS])))
    out.append((LABEL_SETS_RELATION, d.values(snap.current_label_sets, [(c, s) for c in _LABEL_SET_COLUMNS])))
    return out


def _commits_relations(d: _Dialect, commits: str) -> list[tuple[str, str]]:
    """The helper relations as views over the ``commits`` table ``commits`` (engine scripts):
    valid whatever is committed later."""
    q = d.q
    t = _TYPES[d.types]
    current = f"""SELECT c.{q('unit_id')}, c.{q('version')}, c.{q('kind')}, c.{q('source')}, c.{q('input')}, c.{q('label_set')}, c.{q('run_id')}
FROM (
  SELECT x.{q('unit_id')}, x.{q('version')}, x.{q('kind')}, x.{q('source')}, x.{q('input')}, x.{q('label_set')}, x.{q('run_id')},
    ROW_NUMBER() OVER (PARTITION BY x.{q('unit_id')} ORDER BY x.{q('version')} DESC, x.{q('committed_at')} DESC) AS {q('rn')}
  FROM {commits} x
) c
WHERE c.{q('rn')} = 1"""
    committed = (
        f"SELECT DISTINCT {q('source')}, {q('input')}, {q('run_id')}\n"
        f"FROM {CURRENT_COMMITS_RELATION}\nWHERE {q('kind')} = 'parse'"
    )
    committed_entities = (
        f"SELECT DISTINCT {q('source')}, {q('input')}, {q('label_set')}, {q('run_id')}\n"
        f"FROM {commits}\nWHERE {q('kind')} = 'entities'"
    )
    label_sets = (
        f"SELECT {q('source')}, {q('input')}, {q('label_set')}, {q('run_id')}\n"
        f"FROM {CURRENT_COMMITS_RELATION}\nWHERE {q('kind')} = 'entities'"
    )
    rx = d.lit(PUBMED_NAME_SQL_REGEX)
    big = t["int64"]
    # file_rank as views.file_rank_key: (0, year, number) for pubmedYYnNNNN / medlineYYnNNNN,
    # then every other name, by name; ties by name. regexp_extract gives '' (DuckDB, Spark) or
    # NULL (Trino, Athena) when the name does not match.
    order = f"""SELECT o.{q('source')}, o.{q('input')},
  CAST(ROW_NUMBER() OVER (ORDER BY o.{q('nonstandard')}, o.{q('year')}, o.{q('number')}, o.{q('input')}) - 1 AS {big}) AS {q('file_rank')}
FROM (
  SELECT n.{q('source')}, n.{q('input')},
    CASE WHEN n.{q('m')} = '' THEN 1 ELSE 0 END AS {q('nonstandard')},
    CASE WHEN n.{q('m')} = '' THEN 0 ELSE 2000 + CAST(regexp_extract(n.{q('input')}, {rx}, 2) AS {big}) END AS {q('year')},
    CASE WHEN n.{q('m')} = '' THEN 0 ELSE CAST(regexp_extract(n.{q('input')}, {rx}, 3) AS {big}) END AS {q('number')}
  FROM (
    SELECT DISTINCT {q('source')}, {q('input')}, COALESCE(regexp_extract({q('input')}, {rx}, 1), '') AS {q('m')}
    FROM {COMMITTED_RELATION}
    WHERE {q('source')} = 'pubmed'
  ) n
) o"""
    return [
        (CURRENT_COMMITS_RELATION, current),
        (COMMITTED_RELATION, committed),
        (COMMITTED_ENTITIES_RELATION, committed_entities),
        (LABEL_SETS_RELATION, label_sets),
        (ORDER_RELATION, order),
    ]


def _filtered_base(d: _Dialect, table: str, relation: str) -> str:
    """``relation`` (aliased ``t``) joined on the committed runs: the FROM of a filtered base view."""
    q = d.q
    keys = ["source", "input", "run_id"] + (["label_set"] if table == "entities" else [])
    on = " AND ".join(f"t.{q(k)} = c.{q(k)}" for k in keys)
    committed = COMMITTED_ENTITIES_RELATION if table == "entities" else COMMITTED_RELATION
    return f"{relation} JOIN {committed} c ON {on}"


def statements(
    snap: Snapshot,
    dialect: str,
    base: Callable[[str], str | None],
    *,
    helpers: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(view name, CREATE VIEW statement) for every data view. ``base(table)`` gives the FROM
    relation of a base table (its rows named ``t``, already filtered), or None when nothing is
    committed for it (typed empty view). ``helpers``: (name, body) of the helper relations to
    create first as views; None when they exist already (registered in DuckDB)."""
    d = _Dialect(dialect)
    out = [(name, f"CREATE OR REPLACE VIEW {name} AS\n{body}") for name, body in helpers or []]
    for table in BASE_VIEWS:
        rel = base(table)
        body = d.empty(table) if rel is None else _base_select(d, table, rel)
        out.append((table, f"CREATE OR REPLACE VIEW {table} AS\n{body}"))
    for name, body in _current_sql(d, ORDER_RELATION).items():
        out.append((name, f"CREATE OR REPLACE VIEW {name} AS\n{body}"))
    return out


def _duckdb_read(d: _Dialect, files: list[str], *, hive: bool = True) -> str:
    listing = ",\n    ".join(d.lit(f) for f in files)
    if not hive:
        return f"read_parquet([\n    {listing}\n  ])"
    return (
        f"read_parquet([\n    {listing}\n  ], hive_partitioning = true,"
        " hive_types = {'source': 'VARCHAR', 'input': 'VARCHAR'})"
    )


def _location(root_url: str, table: str, dialect: str) -> str:
    url = io.join(root_url, table)
    if dialect == "spark" and url.startswith("s3://"):
        url = "s3a://" + url[len("s3://"):]
    return url


def _files_table(table: str) -> str:
    return f"biogliner_{table}_files"


def _register_delta_table(d: _Dialect, root_url: str, table: str) -> str:
    name = _files_table(table)
    loc = d.lit(_location(root_url, table, d.name))
    if d.name == "trino":
        return (
            f"CALL system.register_table(schema_name => {d.lit(TRINO_SCHEMA)}, table_name => {d.lit(name)}, "
            f"table_location => {loc})"
        )
    if d.name == "athena":
        return f"CREATE EXTERNAL TABLE {name}\nLOCATION {d.lit(_location(root_url, table, d.name) + '/')}\nTBLPROPERTIES ('table_type' = 'DELTA')"
    return f"CREATE TABLE IF NOT EXISTS {name}\nUSING DELTA\nLOCATION {loc}"


def views_sql(snap: Snapshot, dialect: str = "duckdb") -> str:
    """The view definitions as a SQL script for ``dialect`` (see the module docstring)."""
    d = _Dialect(dialect)
    n_units = len(snap.state.parse) if snap.state is not None else 0
    head = [f"-- biogliner views over {snap.root_url} ({dialect})."]
    stmts: list[str] = []
    if dialect == "duckdb":
        what = "the latest commit" if snap.as_of is None else _as_of_text(snap.as_of)
        head += [
            f"-- A snapshot as of {what} (commits table version {snap.version}, {n_units} committed units): the file lists "
            "and committed runs are literal; regenerate after each run (biogliner sql --output URL --views).",
        ]
        if not snap.local:
            head.append("-- Reading s3:// from DuckDB needs the httpfs extension (INSTALL httpfs; LOAD httpfs;).")

        def base(table: str) -> str | None:
            files = snap.files.get(table) or []
            if not files:
                return None
            rel = _duckdb_read(d, files) + " AS t"
            return _filtered_base(d, table, rel) if snap.filtered else rel

        helpers = _literal_relations(d, snap)
        commits_files = snap.files.get(COMMITS_TABLE) or []
        commits_view = (
            f"SELECT * FROM {_duckdb_read(d, commits_files, hive=False)}" if commits_files else _empty_commits(d)
        )
    else:
        if snap.as_of is not None:
            raise ValueError(f"{dialect} views read the Delta tables' latest versions: as_of applies to DuckDB only")
        registered = [t for t in BASE_VIEWS if t in snap.tables or snap.files.get(t)] + [COMMITS_TABLE]
        missing = [t for t in BASE_VIEWS if t not in registered]
        if dialect == "trino":
            head.append(
                f"-- Trino (Delta Lake connector, delta.register-table-procedure.enabled=true): run in schema "
                f"{TRINO_SCHEMA!r} (USE <catalog>.{TRINO_SCHEMA};). register_table fails for a table already "
                "registered: skip those calls when re-running the script."
            )
        elif dialect == "athena":
            head.append("-- Athena: the Delta tables are registered in Glue (schema read from the Delta log); the views are Trino SQL.")
        else:
            head.append("-- Spark SQL with delta-spark (or Databricks): the tables are registered by LOCATION.")
        head += [
            "-- Every table is the Delta table itself; the views keep only rows of committed runs, computed from the",
            "-- commits Delta table (per unit_id, its highest version), so the script stays valid after later runs.",
        ]
        if missing:
            head.append(
                f"-- No Delta table yet for {', '.join(missing)}: typed empty views; regenerate once they exist."
            )
        stmts += [_register_delta_table(d, snap.root_url, t) for t in registered]

        def base(table: str) -> str | None:
            if table not in registered:
                return None
            return _filtered_base(d, table, f"{_files_table(table)} t")

        helpers = _commits_relations(d, _files_table(COMMITS_TABLE))
        commits_view = f"SELECT * FROM {_files_table(COMMITS_TABLE)}"
    stmts += [s for _, s in statements(snap, dialect, base, helpers=helpers)]
    stmts.append(f"CREATE OR REPLACE VIEW commits AS\n{commits_view}")
    return "\n".join(head) + "\n\n" + ";\n\n".join(stmts) + ";\n"


def _empty_commits(d: _Dialect) -> str:
    cols = []
    for f in COMMITS:
        typ = "TIMESTAMP WITH TIME ZONE" if pa.types.is_timestamp(f.type) else _type(f.type, d.types)
        cols.append(f"CAST(NULL AS {typ}) AS {d.q(f.name)}")
    return f"SELECT {', '.join(cols)} FROM {d.one_row} WHERE 1 = 0"


# --------------------------------------------------------------------------- DuckDB runtime


def _arrow(rows, columns: tuple[str, ...], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    types = types or {}
    return pa.table({c: pa.array([r[i] for r in rows], types.get(c, pa.string())) for i, c in enumerate(columns)})


def register(con, output: Output | None, snap: Snapshot | None = None, *, current: str = "auto") -> Snapshot:
    """Create every view of ``output`` in the DuckDB connection ``con``; returns the snapshot.

    The helper relations (``biogliner_input_order``, ``biogliner_committed``,
    ``biogliner_committed_entities``, ``biogliner_current_label_sets``) and ``commits`` are
    registered Arrow tables. ``output`` may be ``None`` for a local snapshot built by hand.

    ``current``: where ``current_*`` come from. ``"maintained"``: the Delta tables kept at each
    run's end (:mod:`biogliner.store.refresh`), fast at any scale; ``"views"``: resolved at read
    time over the history (what an ``--as-of`` snapshot needs); ``"auto"`` (default): the
    maintained tables when the snapshot is the latest state and they are up to date with the
    commits table, else the read-time views."""
    if snap is None:
        if output is None:
            raise ValueError("register needs an output or a snapshot")
        snap = snapshot(output)
    for w in snap.warnings:
        log.warning("%s", w)
    con.register(ORDER_RELATION, _arrow(snap.input_order, ("source", "input", "file_rank"), {"file_rank": pa.int64()}))
    con.register(LABEL_SETS_RELATION, _arrow(snap.current_label_sets, _LABEL_SET_COLUMNS))
    if snap.filtered:
        con.register(COMMITTED_RELATION, _arrow(snap.committed, _COMMITTED_COLUMNS))
        con.register(COMMITTED_ENTITIES_RELATION, _arrow(snap.committed_entities, _LABEL_SET_COLUMNS))
    d = _Dialect("duckdb")
    if snap.local:

        def relation(table: str, files: list[str], folder: str | None = None) -> str:
            return _duckdb_read(d, files) + " AS t"
    else:
        import pyarrow.dataset as ds

        if output is None:
            raise ValueError("an object-store snapshot needs its output (for the storage options)")
        pafs, root_path = io.pyarrow_filesystem(output.root_url, output.storage_options)

        def relation(table: str, files: list[str], folder: str | None = None) -> str:
            paths = [f.split("://", 1)[1] if "://" in f else f for f in files]
            dataset = ds.dataset(
                paths,
                schema=full_schema(table),
                format="parquet",
                filesystem=pafs,
                partitioning=ds.partitioning(pa.schema(PARTITION_FIELDS), flavor="hive"),
                partition_base_dir=f"{root_path.rstrip('/')}/{folder or table}",
            )
            con.register(_files_table(folder or table), dataset)
            return f"{_files_table(folder or table)} AS t"

    def base(table: str) -> str | None:
        files = snap.files.get(table) or []
        if not files:
            return None
        rel = relation(table, files)
        return _filtered_base(d, table, rel) if snap.filtered else rel

    for _, stmt in statements(snap, "duckdb", base):
        con.execute(stmt)
    if current not in ("auto", "maintained", "views"):
        raise ValueError(f"current: auto, maintained or views, got {current!r}")
    if current == "maintained" or (current == "auto" and _maintained_usable(output, snap)):
        _register_maintained(con, output, snap, relation)
    if output is not None and snap.state is not None:
        commits = output.commits_table(snap.version)
    else:
        commits = COMMITS.empty_table()
    con.register("commits", commits)
    return snap


def _maintained_usable(output: Output | None, snap: Snapshot) -> bool:
    if output is None or snap.state is None or snap.as_of is not None:
        return False
    from biogliner.store.refresh import pending

    waiting = pending(output.root_url, output.storage_options)
    if waiting:
        log.info("current_* resolved at read time: %d commit(s) not yet applied to the maintained tables", len(waiting))
    return not waiting


def _register_maintained(con, output: Output, snap: Snapshot, relation) -> None:
    """``current_documents|passages|entities`` as views over the maintained Delta tables."""
    from biogliner.store.current import CURRENT_TABLES, file_uris

    d = _Dialect("duckdb")
    for name in CURRENT_TABLES:
        base = name.removeprefix("current_")
        files = file_uris(output.root_url, name, output.storage_options)
        if snap.local:
            files = [f[len("file://"):] if f.startswith("file://") else f for f in files]
        cols = ", ".join(f"t.{d.q(c)}" for c in view_columns(base))
        body = f"SELECT {cols}\nFROM {relation(base, files, name)}" if files else d.empty(base)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{body}")


def connect(
    output_url: str,
    storage_options: dict | None = None,
    *,
    con=None,
    as_of: int | str | datetime | None = None,
):
    """A DuckDB connection (in memory unless ``con`` is given) with every view of ``output_url``
    (as of an earlier commits-table version or time with ``as_of``, see :func:`snapshot`)."""
    import duckdb

    output = Output(output_url, storage_options)
    con = con if con is not None else duckdb.connect()
    register(con, output, snapshot(output, as_of))
    return con
