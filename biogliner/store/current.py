"""The current state as Delta tables, maintained at each commit (issue 12, item 6).

:mod:`biogliner.store.views` resolves PubMed revisions/deletions and PMC versions at READ time over
the whole history; at full scale (~470 M entities) that costs tens of seconds and more memory than
one machine has. This module keeps the result instead: ``current_documents``,
``current_passages`` and ``current_entities`` are Delta tables holding exactly the rows the views
``current_*`` would return, updated when a unit is applied. :mod:`biogliner.store.refresh` applies
the commits of the ``commits`` table (nothing in the pipeline calls either yet).

Layout under ``root`` (the same root as :mod:`biogliner.store.delta`'s history tables)::

    <root>/current_documents   current_passages   current_entities   partitioned by source, input;
                               the view's columns (``delta.table_schema``: file columns + source, input)
    <root>/current_state       one row per PubMed doc_id / PMC group: the winning event and its order key
    <root>/current_pmc_events  one row per PMC occurrence (kind 0) or PMC deletion (kind 1), keys only
    <root>/current_label_sets  one row per (source, input, label_set): its current commit (run_id, seq)
    <root>/current_parses      one row per (source, input): the parse part applied (run_id, seq)

Semantics (exactly :func:`biogliner.store.views._current_sql`)
----------------------------------------------------------------
- **PubMed**: per ``doc_id`` the latest event in NLM replay order wins; order of an event =
  ``(file order of its input, kind: record 0 < deletion 1, position)``. A record makes that
  occurrence current, a deletion removes the citation. ``current_state`` keeps, per doc_id, the
  winning event (tombstones included) with its order key; a unit is merged with
  ``WHEN MATCHED AND <new key> > <old key> THEN UPDATE``, so an older file applied later never
  wins and the result does not depend on the order units are applied in (the maximum of a set).

  The file order is stored as columns computed from the input NAME alone:
  ``(o_std, o_year, o_number, o_name)`` = :func:`views.file_rank_key` with the name itself as the
  last element (``(0, year, number, name)`` for ``pubmedYYnNNNN``/``medlineYYnNNNN``,
  ``(1, 0, 0, name)`` otherwise). views.py ranks the committed PubMed inputs by
  ``sorted(..., key=file_rank_key)`` and compares ranks; a rank is a position in a sort, so
  comparing two inputs' ranks is comparing their keys, whatever the other inputs are. The only
  difference: two standard names with the same year and number (``pubmed26n0001`` and
  ``medline26n0001``) tie in ``file_rank_key`` and views.py then orders them by set iteration
  (arbitrary); here the name breaks the tie (deterministic).
- **PMC**: per ``COALESCE(pmcid, doc_id)`` (a *group*) the occurrence with the highest
  ``version`` (NULLS LAST), ties the later input name, then the later position, among the
  occurrences whose doc_id no PMC deletion names (any input). Deleting the winning version makes
  an older one current again, so this is not a running maximum: ``current_pmc_events`` keeps the
  keys of every PMC occurrence and deletion, and each application recomputes the winner of the
  groups it touches (groups of its documents, and groups of the doc_ids its deletions name).
- **current_passages** follow ``views.follow_keys`` (source, doc_id, input, position) of the
  current documents; **current_entities** likewise, restricted to the current commit of each
  (source, input, label_set): the one with the highest ``seq``. A re-annotation (a higher ``seq``)
  replaces that label set's rows of that input; a lower ``seq`` applied later is ignored.

Applying
--------
A caller first commits a unit's files to the history (:class:`biogliner.store.delta.DeltaStore`),
then calls :func:`apply_unit` / :func:`apply_units` with the same rows as Arrow tables
(:class:`CurrentUnit`). Rows of occurrences that become current but belong to a unit NOT in the
batch (a PMC version that is current again after its successor's deletion, or an input's label
set whose current commit is not in the batch) are read from the history tables
(``<history_root>/documents|passages|entities``, Delta; ``history=`` may replace that reader).

A **re-published input** (a parse part for (source, input) with a higher ``parse_seq`` than the
one in ``current_parses``, e.g. the commits table's version) REPLACES the applied one, as the views
read only the current parse commit's run: the partition's rows leave the current tables, the
PubMed doc_ids whose winning event was in it are recomputed from the batch and the other inputs'
events (read from the history: the applied run of each input, ``current_parses``), the PMC groups
it touched are recomputed without its old events. A parse part with a lower seq than the applied
one is ignored (its label sets still count); the same seq with another run is refused. Parse
parts without ``parse_seq`` count as seq 0 (applying one twice is a no-op). Rows read from the
history for an input are those of its applied run only: a crashed run may have left rows of
another run_id in the same partition, and a re-published input's older run stays in the history.

One application (a batch of units) is:
1. plan in DuckDB: the batch's best event per PubMed doc_id vs ``current_state``; the PMC winners
   of the touched groups vs ``current_state``; label-set commits vs ``current_label_sets``.
   Result: L (occurrences leaving current), W (occurrences entering), changed label sets;
2. per current table: one MERGE ... WHEN MATCHED DELETE keyed on (source, input, doc_id) of L and
   W (plus, for entities, one keyed on (source, input, label_set) of the changed label sets), then
   one append of W's rows (and of the changed label sets' rows of the input's current documents);
   (a replaced input: first a delete of its whole partition, metadata only);
3. the state tables LAST: ``current_label_sets``, ``current_state`` (MERGE with the order-key
   condition; a replaced input's keys unconditionally; keys left with no event deleted),
   ``current_pmc_events`` (after the state: a rerun still sees a replaced input's old events),
   and ``current_parses`` last of all (until it is written, a rerun replaces again).
Applying the same unit twice changes nothing the second time (no event wins, no label-set commit
is newer). A crash anywhere before the state tables leaves the state as before, and a rerun
recomputes the same plan; its deletes cover the rows the crashed attempt appended, so it converges
to the same tables (fault-tested in tests/store/test_current.py and test_refresh.py). One writer at a time: concurrent appliers
would conflict in delta-rs (``CommitFailedError``), which is raised.

Costs (no deletion vectors, which need protocol 3/7: a row delete rewrites whole files)
-------------------------------------------------------------------------------------------
- Every application reads the state rows of its keys (a scan of ``current_state`` with a join)
  and, when it has PMC rows, all of ``current_pmc_events`` (keys only: ~8 M rows for PMC OA).
- The MERGE on ``current_state`` rewrites the state files holding any updated key; inserts write
  new files.
- Deleting superseded occurrences rewrites, in each older input partition that holds one, the
  files that hold it: a PubMed update file revising citations of N baseline files rewrites up to
  N entity files. Apply a night's units as ONE batch (:func:`apply_units`): each file is then
  rewritten once per batch, not once per unit. ``scripts/bench_current.py`` measures it.
- Appends are plain Delta appends (one file per partition per table per batch).
- Measured (``scripts/bench_current.py``, 2 cores, local disk, 5 M documents, 58.7 M current
  entities, revisions spread uniformly over all earlier inputs): one update file applied alone
  (20 k records, 419 superseded) took 57 s, 43 s of it rewriting ``current_entities`` files;
  batches of 56 inputs 32-70 s each. Reads: count 0.03 s, count per label 0.23 s, join with
  documents by year 2.9 s / 0.8 GB peak RSS (read-time views: 6.2 s, 5.6 s, 10.6 s / 2.4 GB).
  A ``delete("doc_id IN (...)")`` instead of the key MERGE was 1.7x faster with 600 ids, but
  delta-rs 1.6.6 crashed (SIGSEGV) parsing a 30 k-id predicate, so deletes stay MERGEs.
Tables are created with protocol reader 1 / writer 2 and stay there (no timestamps, no deletion
vectors); :func:`protocols` reports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from biogliner.store.delta import delta_storage_options, table_schema

log = logging.getLogger(__name__)

CURRENT_TABLES = ("current_documents", "current_passages", "current_entities")
STATE_TABLE = "current_state"
PMC_EVENTS_TABLE = "current_pmc_events"
LABEL_SETS_TABLE = "current_label_sets"
PARSES_TABLE = "current_parses"
SOURCES = ("pubmed", "pmc")

ORDER_COLUMNS = ("o_std", "o_year", "o_number", "o_name", "kind", "position")

STATE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # PubMed doc_id, or PMC COALESCE(pmcid, doc_id)
        pa.field("doc_id", pa.string()),  # the winning occurrence (PMC tombstone: null)
        pa.field("input", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("kind", pa.int32(), nullable=False),  # 0: a record is current, 1: removed (tombstone)
        pa.field("o_std", pa.int32()),  # PubMed order key of the winning event (null for PMC)
        pa.field("o_year", pa.int32()),
        pa.field("o_number", pa.int64()),
        pa.field("o_name", pa.string()),
        pa.field("version", pa.int32()),  # PMC: the winner's version
        pa.field("source", pa.string(), nullable=False),
    ]
)
PMC_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("grp", pa.string()),  # COALESCE(pmcid, doc_id) of an occurrence; null for a deletion
        pa.field("input", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("version", pa.int32()),
        pa.field("kind", pa.int32(), nullable=False),  # 0 occurrence, 1 deletion
    ]
)
LABEL_SETS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("label_set", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
    ]
)
PARSES_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),  # the run whose rows of this partition are applied
        pa.field("seq", pa.int64(), nullable=False),
    ]
)
_STATE_PARTITIONS = {STATE_TABLE: ["source"], PMC_EVENTS_TABLE: None, LABEL_SETS_TABLE: None, PARSES_TABLE: None}
STATE_TABLES = (STATE_TABLE, PMC_EVENTS_TABLE, LABEL_SETS_TABLE, PARSES_TABLE)


class CurrentStateError(RuntimeError):
    """A unit cannot be applied (inconsistent input)."""


@dataclass(frozen=True)
class LabelSetCommit:
    """One commit of a label set's entities for an input: ``seq`` orders commits (higher is newer,
    e.g. the Delta app-transaction version of the commit); ``run_id`` is on its entity rows."""

    label_set: str
    run_id: str
    seq: int


@dataclass(frozen=True)
class CurrentUnit:
    """What one committed unit adds: the rows it committed to the history, as Arrow tables with the
    file columns of ``schema.TABLES`` (``source``/``input`` columns, if present, must equal the
    unit's). ``documents=None`` means the unit has no parse part (a re-annotation: entities only).
    Every entity row must belong to one of ``label_sets`` (by label_set and run_id)."""

    source: str
    input: str
    documents: pa.Table | None = None
    passages: pa.Table | None = None
    deletions: pa.Table | None = None
    entities: pa.Table | None = None
    label_sets: tuple[LabelSetCommit, ...] = field(default=())
    #: the parse part's commit: its run (default: the run_id of its rows) and its order (higher is
    #: newer, e.g. the commits table's version; default 0). A parse part with a higher seq than the
    #: one applied for (source, input) REPLACES it (a re-published input); a lower one is ignored.
    parse_run_id: str | None = None
    parse_seq: int | None = None


#: history(table, source, input, filters) -> rows of the history table (file columns + source, input);
#: ``input=None``: every input of ``source``. A filter value that is a list/tuple/set means IN.
History = Callable[[str, str, str | None, Mapping[str, object]], pa.Table]


# --------------------------------------------------------------------------------------------- order key
def order_key(input_name: str) -> tuple[int, int, int, str]:
    """``(o_std, o_year, o_number, o_name)`` of a PubMed input: views.file_rank_key plus the name."""
    from biogliner.store.views import file_rank_key

    k = file_rank_key(input_name)
    return (k[0], k[1], k[2], input_name)


def _old_state(con, name: str, source: str, candidates: str, state_cols: str) -> None:
    """Temp table ``name``: the stored state rows of ``source`` for the keys in ``candidates``."""
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT {state_cols} FROM state "
                f"WHERE source = '{source}' AND key IN (SELECT key FROM {candidates})")


def _gt(a: str, b: str, cols: Iterable[str] = ORDER_COLUMNS) -> str:
    """SQL: the order key of alias ``a`` is greater than that of ``b`` (lexicographic)."""
    cols = list(cols)
    c = cols[0]
    if len(cols) == 1:
        return f"{a}.{c} > {b}.{c}"
    return f"({a}.{c} > {b}.{c} OR ({a}.{c} = {b}.{c} AND {_gt(a, b, cols[1:])}))"


# --------------------------------------------------------------------------------------------- tables
class _Tables:
    def __init__(self, root: str, storage_options: Mapping | None):
        self.root = root.rstrip("/")
        self.opts = delta_storage_options(self.root, dict(storage_options or {})) or None
        self._cache: dict = {}

    def uri(self, name: str) -> str:
        return f"{self.root}/{name}"

    def schema(self, name: str) -> pa.Schema:
        if name in CURRENT_TABLES:
            return table_schema(name[len("current_"):])
        return {STATE_TABLE: STATE_SCHEMA, PMC_EVENTS_TABLE: PMC_EVENTS_SCHEMA, LABEL_SETS_TABLE: LABEL_SETS_SCHEMA,
                PARSES_TABLE: PARSES_SCHEMA}[name]

    def partitions(self, name: str) -> list[str] | None:
        return ["source", "input"] if name in CURRENT_TABLES else _STATE_PARTITIONS[name]

    def get(self, name: str):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        dt = self._cache.get(name)
        if dt is not None:
            dt.update_incremental()
            return dt
        try:
            dt = DeltaTable(self.uri(name), storage_options=self.opts)
        except TableNotFoundError:
            dt = DeltaTable.create(
                self.uri(name),
                self.schema(name),
                mode="ignore",
                partition_by=self.partitions(name),
                name=name,
                configuration={"delta.checkpointInterval": "20"},
                storage_options=self.opts,
            )
            dt = DeltaTable(self.uri(name), storage_options=self.opts)
        self._cache[name] = dt
        return dt

    def dataset(self, name: str):
        return self.get(name).to_pyarrow_dataset()

    def append(self, name: str, data: pa.Table) -> None:
        from deltalake import write_deltalake

        if data.num_rows == 0:
            return
        schema = self.schema(name)
        data = _conform(data, schema)
        write_deltalake(self.get(name), data, mode="append", partition_by=self.partitions(name),
                        writer_properties=_writer_properties())

    def delete_partitions(self, name: str, parts: list[tuple[str, str]]) -> None:
        """Delete every row of the (source, input) partitions ``parts`` (metadata only: whole files)."""
        if not parts:
            return
        pred = " OR ".join(f"(source = {_sql_list([s])} AND input = {_sql_list([i])})" for s, i in parts)
        self.get(name).delete(pred, writer_properties=_writer_properties())

    def merge_delete(self, name: str, keys: pa.Table) -> None:
        """Delete every row of ``name`` whose values of ``keys``' columns equal one row of ``keys``."""
        if keys.num_rows == 0:
            return
        on = " AND ".join(f"t.{c} = s.{c}" for c in keys.column_names)
        schema = self.schema(name)
        keys = keys.cast(pa.schema([pa.field(c, schema.field(c).type) for c in keys.column_names]))
        self.get(name).merge(keys, on, source_alias="s", target_alias="t", writer_properties=_writer_properties()) \
            .when_matched_delete().execute()


def _writer_properties():
    """zstd, as the history files (delta.write_data_file); delta-rs's default is snappy."""
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD")


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly ``schema``'s columns, types and nullability (nulls refused where not allowed)."""
    cols = []
    for f in schema:
        col = data.column(f.name).cast(f.type)
        if not f.nullable and col.null_count:
            raise CurrentStateError(f"column {f.name} has {col.null_count} null(s)")
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def _history_reader(root: str, storage_options: Mapping | None) -> History:
    """Reads rows of the Delta history tables under ``root`` (documents/passages/entities)."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = delta_storage_options(root, dict(storage_options or {})) or None
    cache: dict[str, object] = {}

    def read(table: str, source: str, input_: str | None, filters: Mapping[str, object]) -> pa.Table:
        if table not in cache:
            try:
                cache[table] = DeltaTable(f"{root.rstrip('/')}/{table}", storage_options=opts).to_pyarrow_dataset()
            except TableNotFoundError:  # e.g. no deletions committed yet
                cache[table] = None
        if cache[table] is None:
            return table_schema(table).empty_table()
        expr = ds.field("source") == source
        if input_ is not None:
            expr = expr & (ds.field("input") == input_)
        for k, v in filters.items():
            expr = expr & (ds.field(k).isin(list(v)) if isinstance(v, (list, tuple, set, frozenset)) else ds.field(k) == v)
        return cache[table].to_table(filter=expr)

    return read


# --------------------------------------------------------------------------------------------- applying
def apply_unit(root: str, unit: CurrentUnit, **kw) -> dict:
    """Apply one unit; see :func:`apply_units`."""
    return apply_units(root, [unit], **kw)


def apply_units(
    root: str,
    units: list[CurrentUnit],
    *,
    storage_options: Mapping | None = None,
    history: History | None = None,
    history_root: str | None = None,
) -> dict:
    """Bring the current tables under ``root`` up to date with ``units`` (already committed to the
    history), in one application: each current table gets at most one delete per key kind and one
    append. Order of units, inside and across calls, does not matter; applying again is a no-op.
    Returns counts and timings."""
    import duckdb

    t0 = time.perf_counter()
    units = list(units)
    _check_units(units)
    tables = _Tables(root, storage_options)
    hist = history or _history_reader(history_root or root, storage_options)
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        return _apply(con, tables, units, hist, t0)
    finally:
        con.close()


def _check_units(units: list[CurrentUnit]) -> None:
    seen: dict[tuple, tuple] = {}
    parse_seen: set[tuple[str, str]] = set()
    for u in units:
        if u.source not in SOURCES:
            raise CurrentStateError(f"unknown source {u.source!r}")
        if u.documents is not None:
            if (u.source, u.input) in parse_seen:
                raise CurrentStateError(f"{u.source}/{u.input}: two parse parts in one batch")
            parse_seen.add((u.source, u.input))
        for name in ("documents", "passages", "deletions", "entities"):
            t = getattr(u, name)
            if t is None:
                continue
            for c in ("source", "input"):
                if c in t.column_names:
                    vals = set(pc.unique(t.column(c)).to_pylist())
                    if vals - {getattr(u, c)}:
                        raise CurrentStateError(f"{u.source}/{u.input}: {name} rows with {c} {sorted(vals)}")
        declared = {(c.label_set, c.run_id) for c in u.label_sets}
        for c in u.label_sets:
            k = (u.source, u.input, c.label_set, c.seq)
            if k in seen and seen[k] != (c.run_id,):
                raise CurrentStateError(f"{u.source}/{u.input}: label set {c.label_set} seq {c.seq} with two run_ids")
            seen[k] = (c.run_id,)
        if u.entities is not None and u.entities.num_rows:
            pairs = set(zip(u.entities.column("label_set").to_pylist(), u.entities.column("run_id").to_pylist()))
            if pairs - declared:
                raise CurrentStateError(f"{u.source}/{u.input}: entity rows of undeclared label-set commits {sorted(pairs - declared)}")


def _parse_commit(u: CurrentUnit) -> tuple[str, int]:
    """(run_id, seq) of a unit's parse part: as given, else the run_id of its rows and seq 0."""
    run = u.parse_run_id
    if run is None:
        runs: set = set()
        for t in (u.documents, u.passages, u.deletions):
            if t is not None and t.num_rows and "run_id" in t.column_names:
                runs |= set(pc.unique(t.column("run_id")).to_pylist())
        if len(runs) > 1:
            raise CurrentStateError(f"{u.source}/{u.input}: parse rows of several runs {sorted(runs)}; give parse_run_id")
        run = runs.pop() if runs else ""
    return run, int(u.parse_seq or 0)


def _sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def _with_partition(t: pa.Table | None, u: CurrentUnit, table: str) -> pa.Table:
    """The unit's rows of ``table`` with exactly the history schema's columns + source, input."""
    schema = table_schema(table)
    if t is None:
        return schema.empty_table()
    n = t.num_rows
    cols = []
    for f in schema:
        if f.name in ("source", "input") and f.name not in t.column_names:
            cols.append(pa.array([getattr(u, f.name)] * n, f.type))
        else:
            cols.append(t.column(f.name).cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _concat(tables: list[pa.Table], table: str) -> pa.Table:
    return pa.concat_tables(tables) if tables else table_schema(table).empty_table()


def _apply(con, tables: _Tables, units: list[CurrentUnit], hist: History, t0: float) -> dict:
    timings: dict[str, float] = {}

    def lap(name: str, since: list[float] = [t0]) -> None:  # noqa: B006 (a running clock)
        now = time.perf_counter()
        timings[name] = round(now - since[0], 4)
        since[0] = now

    # -- parse parts: new, the one applied again, a replacement (higher seq), or stale (ignored) ------
    applied_parses = {(r["source"], r["input"]): (r["run_id"], r["seq"]) for r in tables.dataset(PARSES_TABLE).to_table().to_pylist()}
    parse_rows: dict[tuple[str, str], tuple[str, int]] = {}
    replaced: list[tuple[str, str]] = []
    kept = []
    for u in units:
        if u.documents is not None:
            run, seq = _parse_commit(u)
            old = applied_parses.get((u.source, u.input))
            if old is not None and seq < old[1]:
                log.info("%s/%s: parse part seq %d older than the applied %d: ignored", u.source, u.input, seq, old[1])
                u = replace(u, documents=None, passages=None, deletions=None)
            elif old is not None and seq == old[1] and run != old[0]:
                raise CurrentStateError(f"{u.source}/{u.input}: parse part seq {seq} with run {run!r}, "
                                        f"{old[0]!r} applied at the same seq")
            else:
                parse_rows[(u.source, u.input)] = (run, seq)
                if old is not None and seq > old[1]:
                    replaced.append((u.source, u.input))
        kept.append(u)
    units = kept

    # -- the batch's rows ------------------------------------------------------------------------
    docs = _concat([_with_partition(u.documents, u, "documents") for u in units if u.documents is not None], "documents")
    pas = _concat([_with_partition(u.passages, u, "passages") for u in units if u.documents is not None], "passages")
    dels = _concat([_with_partition(u.deletions, u, "deletions") for u in units if u.documents is not None], "deletions")
    ents = _concat([_with_partition(u.entities, u, "entities") for u in units if u.entities is not None], "entities")
    parsed = pa.table(
        {"source": pa.array([u.source for u in units if u.documents is not None], pa.string()),
         "input": pa.array([u.input for u in units if u.documents is not None], pa.string())}
    )
    ls_rows = {}
    for u in units:
        for c in u.label_sets:
            k = (u.source, u.input, c.label_set)
            if k not in ls_rows or ls_rows[k][1] < c.seq:
                ls_rows[k] = (c.run_id, c.seq)
    batch_ls = pa.table(
        {
            "source": pa.array([k[0] for k in ls_rows], pa.string()),
            "input": pa.array([k[1] for k in ls_rows], pa.string()),
            "label_set": pa.array([k[2] for k in ls_rows], pa.string()),
            "run_id": pa.array([v[0] for v in ls_rows.values()], pa.string()),
            "seq": pa.array([v[1] for v in ls_rows.values()], pa.int64()),
        }
    )
    rep_pubmed = sorted(i for s, i in replaced if s == "pubmed")
    rep_pmc = sorted(i for s, i in replaced if s == "pmc")
    con.register("state", tables.dataset(STATE_TABLE))
    # a replaced PubMed input: the doc_ids whose winning event was in it are recomputed from the
    # applied parse parts of the other inputs (read from the history) and the batch
    alt_ev = pa.table({"doc_id": pa.array([], pa.string()), "input": pa.array([], pa.string()),
                       "position": pa.array([], pa.int64()), "kind": pa.array([], pa.int32())})
    retract: list[str] = []
    if rep_pubmed:
        con.register("b_rep_pubmed", pa.table({"input": pa.array(rep_pubmed, pa.string())}))
        retract = [r[0] for r in con.execute(  # a semi-join: an IN list pushed into the dataset fails (string_view)
            "SELECT key FROM state WHERE source = 'pubmed' AND input IN (SELECT input FROM b_rep_pubmed)").fetchall()]
    if retract:
        skip = set(rep_pubmed) | {i for s, i in parse_rows if s == "pubmed"}
        parts = []
        for kind, table in ((0, "documents"), (1, "deletions")):
            t = hist(table, "pubmed", None, {"doc_id": retract})
            keep = [applied_parses.get(("pubmed", i), (None,))[0] == r and i not in skip
                    for i, r in zip(t.column("input").to_pylist(), t.column("run_id").to_pylist())]
            t = t.filter(pa.array(keep, pa.bool_())) if t.num_rows else t
            parts.append(pa.table({"doc_id": t.column("doc_id").cast(pa.string()), "input": t.column("input").cast(pa.string()),
                                   "position": t.column("position").cast(pa.int64()),
                                   "kind": pa.array([kind] * t.num_rows, pa.int32())}))
        alt_ev = pa.concat_tables(parts)
    inputs = sorted({u.input for u in units if u.source == "pubmed"} | set(alt_ev.column("input").to_pylist()))
    okeys = [order_key(i) for i in inputs]
    order = pa.table(
        {
            "input": pa.array(inputs, pa.string()),
            "o_std": pa.array([k[0] for k in okeys], pa.int32()),
            "o_year": pa.array([k[1] for k in okeys], pa.int32()),
            "o_number": pa.array([k[2] for k in okeys], pa.int64()),
            "o_name": pa.array([k[3] for k in okeys], pa.string()),
        }
    )
    b_rep = pa.table({"source": pa.array([s for s, _ in replaced], pa.string()),
                      "input": pa.array([i for _, i in replaced], pa.string())})
    retract_t = pa.table({"key": pa.array(retract, pa.string())})
    for name, t in (("b_docs", docs), ("b_pas", pas), ("b_dels", dels), ("b_ents", ents), ("b_parsed", parsed),
                    ("b_ls", batch_ls), ("b_order", order), ("b_rep", b_rep), ("alt_ev", alt_ev), ("pm_retract", retract_t)):
        con.register(name, t)
    con.register("pmc_events", tables.dataset(PMC_EVENTS_TABLE))
    con.register("ls_state", tables.dataset(LABEL_SETS_TABLE))
    state_cols = ", ".join(STATE_SCHEMA.names)

    # -- PubMed: the batch's best event per doc_id, against the state ------------------------------
    con.execute("""
        CREATE TEMP TABLE pm_best AS
        WITH ev AS (
          SELECT doc_id, input, position, 0 AS kind FROM b_docs WHERE source = 'pubmed'
          UNION ALL
          SELECT doc_id, input, position, 1 AS kind FROM b_dels WHERE source = 'pubmed'
          UNION ALL
          SELECT doc_id, input, position, kind FROM alt_ev
        ), ranked AS (
          SELECT e.doc_id, e.input, e.position, e.kind, o.o_std, o.o_year, o.o_number, o.o_name,
            ROW_NUMBER() OVER (PARTITION BY e.doc_id ORDER BY o.o_std DESC, o.o_year DESC, o.o_number DESC,
                               o.o_name DESC, e.kind DESC, e.position DESC) AS rn
          FROM ev e JOIN b_order o USING (input)
        )
        SELECT doc_id AS key, doc_id, input, position, CAST(kind AS INTEGER) AS kind, o_std, o_year, o_number, o_name,
               CAST(NULL AS INTEGER) AS version, 'pubmed' AS source
        FROM ranked WHERE rn = 1""")
    con.execute("CREATE TEMP TABLE pm_cand AS SELECT key FROM pm_best UNION SELECT key FROM pm_retract")
    _old_state(con, "pm_old", "pubmed", "pm_cand", state_cols)
    # a key whose winner was in a replaced input takes its recomputed winner, whatever its order
    con.execute(f"""
        CREATE TEMP TABLE pm_new AS
        SELECT b.* FROM pm_best b LEFT JOIN pm_old o ON o.key = b.key
        WHERE o.key IS NULL OR {_gt('b', 'o')}
           OR o.input IN (SELECT input FROM b_rep WHERE source = 'pubmed')""")
    # ... or none: no event of it is left (kind 2 marks a state row to delete)
    con.execute("""
        CREATE TEMP TABLE pm_gone AS
        SELECT key, doc_id, input, position, CAST(2 AS INTEGER) AS kind, o_std, o_year, o_number, o_name, version, source
        FROM pm_old WHERE key IN (SELECT key FROM pm_retract) AND key NOT IN (SELECT key FROM pm_best)""")

    # -- PMC: recompute the touched groups ---------------------------------------------------------
    con.execute("""
        CREATE TEMP TABLE pmc_new_events AS
        SELECT DISTINCT doc_id, COALESCE(pmcid, doc_id) AS grp, input, position, version, 0 AS kind FROM b_docs WHERE source = 'pmc'
        UNION
        SELECT DISTINCT doc_id, NULL AS grp, input, position, CAST(NULL AS INTEGER) AS version, 1 AS kind FROM b_dels WHERE source = 'pmc'""")
    has_pmc = bool(rep_pmc) or con.execute("SELECT count(*) FROM pmc_new_events").fetchone()[0] > 0
    if has_pmc:
        # a replaced input's stored events are dropped: its new part's events take their place
        rep_in = "(SELECT input FROM b_rep WHERE source = 'pmc')"
        con.execute(f"""
            CREATE TEMP TABLE pmc_all AS
            SELECT doc_id, grp, input, position, version, kind FROM pmc_events WHERE input NOT IN {rep_in}
            UNION
            SELECT doc_id, grp, input, position, version, kind FROM pmc_new_events""")
        # touched groups: of the new events, and of the replaced inputs' old events and winners
        con.execute(f"""
            CREATE TEMP TABLE pmc_groups AS
            SELECT DISTINCT grp FROM pmc_new_events WHERE kind = 0
            UNION
            SELECT DISTINCT a.grp FROM pmc_all a JOIN pmc_new_events d ON d.kind = 1 AND a.kind = 0 AND a.doc_id = d.doc_id
            UNION
            SELECT key AS grp FROM state WHERE source = 'pmc' AND input IN {rep_in}
            UNION
            SELECT DISTINCT grp FROM pmc_events WHERE kind = 0 AND input IN {rep_in}
            UNION
            SELECT DISTINCT a.grp FROM pmc_all a JOIN pmc_events d
              ON d.kind = 1 AND d.input IN {rep_in} AND a.kind = 0 AND a.doc_id = d.doc_id""")
        con.execute("""
            CREATE TEMP TABLE pmc_target AS
            WITH ranked AS (
              SELECT a.grp, a.doc_id, a.input, a.position, a.version,
                ROW_NUMBER() OVER (PARTITION BY a.grp ORDER BY a.version DESC NULLS LAST, a.input DESC, a.position DESC) AS rn
              FROM pmc_all a
              WHERE a.kind = 0 AND a.grp IN (SELECT grp FROM pmc_groups)
                AND NOT EXISTS (SELECT 1 FROM pmc_all x WHERE x.kind = 1 AND x.doc_id = a.doc_id)
            ), win AS (SELECT * FROM ranked WHERE rn = 1)
            SELECT g.grp AS key, w.doc_id, w.input, w.position,
                   CAST(CASE WHEN w.doc_id IS NULL THEN 1 ELSE 0 END AS INTEGER) AS kind,
                   CAST(NULL AS INTEGER) AS o_std, CAST(NULL AS INTEGER) AS o_year, CAST(NULL AS BIGINT) AS o_number,
                   CAST(NULL AS VARCHAR) AS o_name, w.version, 'pmc' AS source
            FROM pmc_groups g LEFT JOIN win w ON w.grp = g.grp""")
        _old_state(con, "pmc_old", "pmc", "pmc_target", state_cols)
        con.execute(f"""
            CREATE TEMP TABLE pmc_new AS
            SELECT n.* FROM pmc_target n LEFT JOIN pmc_old o ON o.key = n.key
            WHERE (o.key IS NULL AND n.kind = 0)
               OR (o.key IS NOT NULL AND (n.kind IS DISTINCT FROM o.kind OR n.doc_id IS DISTINCT FROM o.doc_id
                   OR n.input IS DISTINCT FROM o.input OR n.position IS DISTINCT FROM o.position
                   OR o.input IN {rep_in}))""")
    else:
        for t in ("pmc_old", "pmc_new"):
            con.execute(f"CREATE TEMP TABLE {t} AS SELECT {state_cols} FROM pm_old WHERE 1 = 0")

    # L: occurrences leaving current; W: entering (keys source, doc_id, input, position)
    con.execute("""
        CREATE TEMP TABLE changed AS
        SELECT source, key FROM pm_new UNION ALL SELECT source, key FROM pm_gone UNION ALL SELECT source, key FROM pmc_new""")
    con.execute("""
        CREATE TEMP TABLE leaving AS
        SELECT source, doc_id, input, position FROM pm_old
        WHERE kind = 0 AND (key IN (SELECT key FROM pm_new) OR key IN (SELECT key FROM pm_gone))
        UNION ALL
        SELECT source, doc_id, input, position FROM pmc_old WHERE kind = 0 AND key IN (SELECT key FROM pmc_new)""")
    con.execute("""
        CREATE TEMP TABLE entering AS
        SELECT source, doc_id, input, position FROM pm_new WHERE kind = 0
        UNION ALL
        SELECT source, doc_id, input, position FROM pmc_new WHERE kind = 0""")

    # -- label sets ------------------------------------------------------------------------------
    con.execute("""
        CREATE TEMP TABLE ls_old AS
        SELECT l.* FROM ls_state l JOIN b_ls b USING (source, input, label_set)""")
    clash = con.execute("""
        SELECT b.source, b.input, b.label_set FROM b_ls b JOIN ls_old o USING (source, input, label_set)
        WHERE b.seq = o.seq AND b.run_id <> o.run_id LIMIT 1""").fetchall()
    if clash:
        raise CurrentStateError(f"label-set commit {clash[0]}: same seq, another run_id than the one applied")
    con.execute("""
        CREATE TEMP TABLE ls_changed AS
        SELECT b.* FROM b_ls b LEFT JOIN ls_old o USING (source, input, label_set)
        WHERE o.seq IS NULL OR b.seq > o.seq""")
    # current label-set commit of every input that matters (entering occurrences' inputs, changed ones)
    con.execute("""
        CREATE TEMP TABLE ls_current AS
        WITH inputs AS (SELECT DISTINCT source, input FROM entering UNION SELECT DISTINCT source, input FROM ls_changed),
        stored AS (SELECT l.* FROM ls_state l JOIN inputs USING (source, input)
                   WHERE NOT EXISTS (SELECT 1 FROM ls_changed c WHERE c.source = l.source AND c.input = l.input AND c.label_set = l.label_set))
        SELECT source, input, label_set, run_id, seq FROM stored
        UNION ALL
        SELECT c.source, c.input, c.label_set, c.run_id, c.seq FROM ls_changed c JOIN inputs USING (source, input)""")
    # current occurrences after this batch, of the inputs whose label set changed
    con.execute("""
        CREATE TEMP TABLE ls_occ AS
        WITH ins AS (SELECT DISTINCT source, input FROM ls_changed)
        SELECT s.source, s.doc_id, s.input, s.position FROM state s JOIN ins USING (source, input)
        WHERE s.kind = 0 AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.source = s.source AND c.key = s.key)
        UNION ALL
        SELECT e.source, e.doc_id, e.input, e.position FROM entering e JOIN ins USING (source, input)""")
    # (occurrence, label set commit) pairs whose entity rows are to be (re)written
    con.execute("""
        CREATE TEMP TABLE ent_want AS
        SELECT e.source, e.doc_id, e.input, e.position, l.label_set, l.run_id
        FROM entering e JOIN ls_current l USING (source, input)
        UNION
        SELECT o.source, o.doc_id, o.input, o.position, c.label_set, c.run_id
        FROM ls_occ o JOIN ls_changed c USING (source, input)""")
    lap("plan_s")

    # -- rows to append ----------------------------------------------------------------------------
    def from_history(table: str, need_sql: str, extra_keys: tuple[str, ...]) -> pa.Table:
        """History rows for ``need_sql``'s (source, input, doc_id[, extra_keys]) not in the batch."""
        need = con.sql(need_sql).to_arrow_table()
        if need.num_rows == 0:
            return table_schema(table).empty_table()
        out = []
        groups: dict[tuple, set] = {}
        for r in need.to_pylist():
            groups.setdefault((r["source"], r["input"], *(r[k] for k in extra_keys)), set()).add(r["doc_id"])
        for (src, inp, *extra), ids in groups.items():
            filters = {"doc_id": sorted(ids), **dict(zip(extra_keys, extra))}
            if "run_id" not in filters and (src, inp) in applied_parses:  # the applied run's rows only
                filters["run_id"] = applied_parses[(src, inp)][0]
            t = hist(table, src, inp, filters)
            out.append(_conform(t, table_schema(table)))
        return pa.concat_tables(out)

    h_docs = from_history(
        "documents",
        "SELECT DISTINCT source, input, doc_id FROM entering e WHERE NOT EXISTS "
        "(SELECT 1 FROM b_parsed p WHERE p.source = e.source AND p.input = e.input)",
        (),
    )
    h_pas = from_history(
        "passages",
        "SELECT DISTINCT source, input, doc_id FROM entering e WHERE NOT EXISTS "
        "(SELECT 1 FROM b_parsed p WHERE p.source = e.source AND p.input = e.input)",
        (),
    )
    h_ents = from_history(
        "entities",
        "SELECT DISTINCT source, input, doc_id, label_set, run_id FROM ent_want w WHERE NOT EXISTS "
        "(SELECT 1 FROM b_ls b WHERE b.source = w.source AND b.input = w.input AND b.label_set = w.label_set "
        "AND b.run_id = w.run_id)",
        ("label_set", "run_id"),
    )
    con.register("h_docs", h_docs)
    con.register("h_pas", h_pas)
    con.register("h_ents", h_ents)
    lap("history_s")

    def rows(sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    occ_on = "t.source = w.source AND t.doc_id = w.doc_id AND t.input = w.input AND t.position = w.position"
    new_docs = rows(f"""
        SELECT t.* FROM (SELECT * FROM b_docs UNION ALL BY NAME SELECT * FROM h_docs) t JOIN entering w ON {occ_on}""")
    new_pas = rows(f"""
        SELECT t.* FROM (SELECT * FROM b_pas UNION ALL BY NAME SELECT * FROM h_pas) t JOIN entering w ON {occ_on}""")
    new_ents = rows(f"""
        SELECT t.* FROM (SELECT * FROM b_ents UNION ALL BY NAME SELECT * FROM h_ents) t JOIN ent_want w
          ON {occ_on} AND t.label_set = w.label_set AND t.run_id = w.run_id""")
    del_occ = rows("""
        SELECT DISTINCT source, input, doc_id FROM (SELECT source, input, doc_id FROM leaving
                                                    UNION ALL SELECT source, input, doc_id FROM entering)""")
    del_ls = rows("SELECT DISTINCT source, input, label_set FROM ls_changed")
    new_state = rows(f"SELECT {state_cols} FROM pm_best UNION ALL SELECT {state_cols} FROM pm_gone "
                     f"UNION ALL SELECT {state_cols} FROM pmc_new")
    new_events = rows("SELECT doc_id, grp, input, position, version, kind FROM pmc_new_events")
    lap("rows_s")

    # -- writes: current tables first, state last ------------------------------------------------------
    for name, data in (("current_documents", new_docs), ("current_passages", new_pas), ("current_entities", new_ents)):
        tables.delete_partitions(name, replaced)  # a replaced input's rows: its current ones are in `data`
        tables.merge_delete(name, del_occ)
        if name == "current_entities":
            tables.merge_delete(name, del_ls)
        tables.append(name, data)
        lap(f"write_{name}_s")
    if batch_ls.num_rows:
        dt = tables.get(LABEL_SETS_TABLE)
        dt.merge(_conform(batch_ls, LABEL_SETS_SCHEMA), "t.source = s.source AND t.input = s.input AND t.label_set = s.label_set",
                 source_alias="s", target_alias="t", writer_properties=_writer_properties()) \
            .when_matched_update_all(predicate="s.seq > t.seq").when_not_matched_insert_all().execute()
    if new_state.num_rows:
        dt = tables.get(STATE_TABLE)
        update = f"s.source = 'pmc' OR {_gt('s', 't')}"
        if rep_pubmed:  # the winner was in a replaced input: the recomputed one, whatever its order
            update += f" OR t.input IN ({_sql_list(rep_pubmed)})"
        dt.merge(_conform(new_state, STATE_SCHEMA), "t.source = s.source AND t.key = s.key", source_alias="s",
                 target_alias="t", writer_properties=_writer_properties()) \
            .when_matched_delete(predicate="s.kind = 2") \
            .when_matched_update_all(predicate=update) \
            .when_not_matched_insert_all(predicate="(s.source = 'pubmed' AND s.kind < 2) OR s.kind = 0").execute()
    # PMC events after the state: a rerun after a crash before this point still sees a replaced
    # input's old events (the groups they touched); the state already holds what they decided
    if new_events.num_rows or rep_pmc:
        dt = tables.get(PMC_EVENTS_TABLE)
        if new_events.num_rows:
            on = " AND ".join(f"t.{c} = s.{c}" for c in ("doc_id", "input", "position", "kind"))
            m = dt.merge(_conform(new_events, PMC_EVENTS_SCHEMA), on, source_alias="s", target_alias="t",
                         writer_properties=_writer_properties()).when_not_matched_insert_all()
            if rep_pmc:
                m = m.when_not_matched_by_source_delete(predicate=f"t.input IN ({_sql_list(rep_pmc)})")
            m.execute()
        else:
            dt.delete(f"input IN ({_sql_list(rep_pmc)})", writer_properties=_writer_properties())
    # the applied parse parts LAST: until then a rerun replaces (and reads the history) as this one did
    if parse_rows:
        dt = tables.get(PARSES_TABLE)
        t = pa.table({"source": pa.array([k[0] for k in parse_rows], pa.string()),
                      "input": pa.array([k[1] for k in parse_rows], pa.string()),
                      "run_id": pa.array([v[0] for v in parse_rows.values()], pa.string()),
                      "seq": pa.array([v[1] for v in parse_rows.values()], pa.int64())})
        dt.merge(_conform(t, PARSES_SCHEMA), "t.source = s.source AND t.input = s.input", source_alias="s",
                 target_alias="t", writer_properties=_writer_properties()) \
            .when_matched_update_all(predicate="s.seq > t.seq").when_not_matched_insert_all().execute()
    lap("write_state_s")
    result = {
        "units": len(units),
        "entering": con.execute("SELECT count(*) FROM entering").fetchone()[0],
        "leaving": con.execute("SELECT count(*) FROM leaving").fetchone()[0],
        "label_sets_changed": del_ls.num_rows,
        "replaced": [f"{s}/{i}" for s, i in replaced],
        "rows_appended": {"current_documents": new_docs.num_rows, "current_passages": new_pas.num_rows,
                          "current_entities": new_ents.num_rows},
        "timings": {**timings, "total_s": round(time.perf_counter() - t0, 4)},
    }
    log.info("applied %d unit(s): %s", len(units), result)
    return result


# --------------------------------------------------------------------------------------------- reading
def file_uris(root: str, table: str, storage_options: Mapping | None = None) -> list[str]:
    """The committed files of a current/state table (``[]`` if it does not exist yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = delta_storage_options(root, dict(storage_options or {})) or None
    try:
        return sorted(DeltaTable(f"{root.rstrip('/')}/{table}", storage_options=opts).file_uris())
    except TableNotFoundError:
        return []


def protocols(root: str, storage_options: Mapping | None = None) -> dict[str, tuple[int, int]]:
    """(min reader, min writer) protocol of each existing current/state table."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = delta_storage_options(root, dict(storage_options or {})) or None
    out = {}
    for name in (*CURRENT_TABLES, *STATE_TABLES):
        try:
            p = DeltaTable(f"{root.rstrip('/')}/{name}", storage_options=opts).protocol()
        except TableNotFoundError:
            continue
        out[name] = (p.min_reader_version, p.min_writer_version)
    return out


def view_columns(table: str) -> list[str]:
    """Column order of a current table as the views have it (views.view_columns of the base table)."""
    from biogliner.store.views import view_columns as vc

    return vc(table[len("current_"):] if table.startswith("current_") else table)

