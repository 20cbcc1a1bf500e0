"""Keep the maintained current tables (:mod:`biogliner.store.current`) in step with the commits table.

The ``commits`` table (:mod:`biogliner.store.output`) says which units are committed; the current
tables (``current_documents``/``current_passages``/``current_entities``) hold what the read-time
views would return over them. :func:`refresh_current` applies every committed unit the current
tables have not seen yet, and records it in a small Delta table under the root::

    <root>/current_applied    one row per applied commit: unit_id, version, kind, applied_at (UTC)

A commit is *pending* when its ``commits`` row is the unit's current one (highest ``version`` per
``unit_id``) and ``current_applied`` holds no row for that unit at that version or later.

Refreshing
----------
1. Read the commits table (one snapshot), then ``current_applied``; group the pending commits by
   partition (source, input) in commit order, and cut the partitions into batches of at most
   ``max_units_per_batch`` partitions (and about ``max_rows_per_batch`` history rows).
2. Per batch, read the units' rows from the history tables (``documents``, ``passages``,
   ``deletions``, ``entities``), keeping only the rows of the run the commit names: a crashed
   earlier run may have left rows of another run_id in the same partition, and a re-published
   input's older run stays in the history. Entity rows: (source, input, label_set, run_id).
   - a pending **parse** commit gives a :class:`~biogliner.store.current.CurrentUnit` with
     documents/passages/deletions (``parse_run_id``/``parse_seq`` = the commit's run and
     version) and the rows of every CURRENT entities commit of the partition (label sets with
     ``seq`` = that commit's version). A parse commit at a higher version than the one applied
     (a re-published input) replaces the partition's older rows in the current tables;
   - a pending **entities** commit alone (``--reannotate``, a label set added later) gives an
     entities-only unit (``documents=None``).
3. :func:`biogliner.store.current.apply_units` the batch, THEN append the batch's commits to
   ``current_applied``. A crash in between leaves them pending: the next refresh applies them
   again, which changes nothing that is already right (``apply_units`` is idempotent and
   converges after a crash inside it). Pending commits are ordered by commit time, so the next
   refresh's first batch starts with the units the crashed one was applying.

Rows that an application needs from units outside the batch (a PMC version current again, a
label set's older commit, the other inputs' events of a re-published PubMed input's citations)
are read from the history restricted to the commits table's current parse run of each partition.

One refresher at a time per root: two concurrent ``apply_units`` conflict in delta-rs
(``CommitFailedError``, raised). ``current_applied`` stays at protocol reader 1 / writer 2
(its timestamp is UTC-aware).

Costs: reading the commits table and ``current_applied`` (small), then per batch one filtered
scan per history table (partition pruning on source/input) and one ``apply_units``; see
:mod:`biogliner.store.current` for what an application costs. A batch holds all its units' rows
in memory: ``max_rows_per_batch`` (from the commits rows' ``rows_*`` counts) bounds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from biogliner.store import current as cur
from biogliner.store.delta import COMMITS_TABLE, delta_storage_options, table_schema
from biogliner.store.output import ENTITIES, PARSE, CommitRecord, CommitState, Output

log = logging.getLogger(__name__)

APPLIED_TABLE = "current_applied"
APPLIED_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("applied_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
PARSE_TABLES = ("documents", "passages", "deletions")
_SEP = "\x1f"


# --------------------------------------------------------------------------------------------- state
def _opts(root: str, storage_options: Mapping | None) -> dict | None:
    return delta_storage_options(root.rstrip("/"), dict(storage_options or {})) or None


def _read_commits(output: Output) -> tuple[CommitState, dict[tuple[str, int], int]]:
    """The commit state and, per (unit_id, version), its committed row count (documents, passages,
    deletions, entities)."""
    t = output.commits_table()
    version = output.delta.version(COMMITS_TABLE)
    rows = t.to_pylist()
    sizes = {(r["unit_id"], int(r["version"])): sum(int(r.get(f"rows_{n}") or 0) for n in (*PARSE_TABLES, "entities"))
             for r in rows}
    return CommitState(tuple(CommitRecord.from_row(r) for r in rows), version), sizes


def applied_versions(root: str, storage_options: Mapping | None = None) -> dict[str, int]:
    """unit_id -> the highest version recorded in ``current_applied`` (``{}`` when it does not exist)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        t = DeltaTable(f"{root.rstrip('/')}/{APPLIED_TABLE}", storage_options=_opts(root, storage_options)) \
            .to_pyarrow_table(columns=["unit_id", "version"])
    except TableNotFoundError:
        return {}
    out: dict[str, int] = {}
    for u, v in zip(t.column("unit_id").to_pylist(), t.column("version").to_pylist()):
        if v > out.get(u, -1):
            out[u] = v
    return out


def _current_commits(state: CommitState) -> list[CommitRecord]:
    """The current commit (highest version) of every unit_id, in commit order."""
    latest: dict[str, CommitRecord] = {}
    for r in state.records:  # in commit order: a later row of the same version wins, as CommitState's
        if r.unit_id not in latest or r.version >= latest[r.unit_id].version:
            latest[r.unit_id] = r
    return sorted(latest.values(), key=lambda r: (r.committed_at or datetime.min.replace(tzinfo=timezone.utc), r.unit_id))


def _pending(state: CommitState, applied: Mapping[str, int]) -> list[CommitRecord]:
    return [r for r in _current_commits(state) if applied.get(r.unit_id, -1) < r.version]


def pending(root: str, storage_options: Mapping | None = None) -> list[CommitRecord]:
    """The current commits not yet applied to the current tables, in commit order."""
    state, _ = _read_commits(Output(root, storage_options))
    return _pending(state, applied_versions(root, storage_options))


def up_to_date(root: str, storage_options: Mapping | None = None) -> bool:
    """Whether every current commit (highest version per unit_id) is in ``current_applied``, i.e.
    the ``current_*`` tables equal the read-time views (``True`` when nothing is committed)."""
    return not pending(root, storage_options)


# --------------------------------------------------------------------------------------------- history
class _History:
    """Rows of the history tables under the root, restricted to committed runs. Opened AFTER the
    commits table was read, so every file of every commit read is in these snapshots."""

    def __init__(self, root: str, storage_options: Mapping | None, state: CommitState):
        self.root = root.rstrip("/")
        self.opts = _opts(root, storage_options)
        self._ds: dict[str, object] = {}
        self.parse_runs = {k: r.run_id for k, r in state.parse.items()}  # (source, input) -> current parse run

    def dataset(self, table: str):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        if table not in self._ds:
            try:
                self._ds[table] = DeltaTable(f"{self.root}/{table}", storage_options=self.opts).to_pyarrow_dataset()
            except TableNotFoundError:
                self._ds[table] = None
        return self._ds[table]

    def scan(self, table: str, source: str, inputs: list[str] | None, filters: Mapping[str, object] = {}) -> pa.Table:  # noqa: B006
        import pyarrow.dataset as ds

        d = self.dataset(table)
        if d is None:
            return table_schema(table).empty_table()
        expr = ds.field("source") == source
        if inputs is not None:
            expr = expr & (ds.field("input").isin(list(inputs)) if len(inputs) != 1 else ds.field("input") == inputs[0])
        for k, v in filters.items():
            expr = expr & (ds.field(k).isin(list(v)) if isinstance(v, (list, tuple, set, frozenset)) else ds.field(k) == v)
        return d.to_table(filter=expr)

    def committed_only(self, table: str, t: pa.Table) -> pa.Table:
        """Parse tables: only the rows of each partition's current parse run (apply_units names the
        run it applied when it has one: a partition re-published since is applied later)."""
        if table not in PARSE_TABLES or t.num_rows == 0:
            return t
        keys = pa.array([f"{s}{_SEP}{i}{_SEP}{r}" for (s, i), r in self.parse_runs.items()], pa.string())
        return t.filter(pc.is_in(_key(t, ("source", "input", "run_id")), value_set=keys))

    def __call__(self, table: str, source: str, input_: str | None, filters: Mapping[str, object]) -> pa.Table:
        """The :data:`biogliner.store.current.History` reader handed to ``apply_units``."""
        t = self.scan(table, source, None if input_ is None else [input_], filters)
        return t if "run_id" in filters else self.committed_only(table, t)


def _key(t: pa.Table, cols: tuple[str, ...]) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(*[t.column(c).cast(pa.string()) for c in cols], _SEP)


def _split(t: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """(source, input) -> that partition's rows (slices of one sorted table)."""
    if t.num_rows == 0:
        return {}
    t = t.sort_by([("source", "ascending"), ("input", "ascending")])
    counts = pc.value_counts(_key(t, ("source", "input")))  # first-seen order = sorted order
    out, start = {}, 0
    for v, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        s, i = v.split(_SEP)
        out[(s, i)] = t.slice(start, n)
        start += n
    return out


# --------------------------------------------------------------------------------------------- applying
def _batch_units(hist: _History, state: CommitState, parts: list[tuple[tuple[str, str], list[CommitRecord]]]) -> list[cur.CurrentUnit]:
    """The CurrentUnits of one batch: one per partition, rows read from the history."""
    label_sets = state.label_sets
    plan = []  # (partition, parse commit or None, [entity commits])
    for key, recs in parts:
        p = next((r for r in recs if r.kind == PARSE), None)
        if p is not None:  # with the partition's every current label-set commit
            ents = sorted(label_sets.get(key, {}).values(), key=lambda r: r.label_set or "")
        else:
            ents = [r for r in recs if r.kind == ENTITIES]
        plan.append((key, p, ents))

    rows: dict[str, dict[tuple[str, str], pa.Table]] = {}
    for source in sorted({k[0] for k, _, _ in plan}):
        parsed = [(k, p) for k, p, _ in plan if k[0] == source and p is not None]
        if parsed:
            want = pa.array([f"{k[0]}{_SEP}{k[1]}{_SEP}{p.run_id}" for k, p in parsed], pa.string())
            for table in PARSE_TABLES:
                t = hist.scan(table, source, sorted({k[1] for k, _ in parsed}))
                t = t.filter(pc.is_in(_key(t, ("source", "input", "run_id")), value_set=want)) if t.num_rows else t
                rows.setdefault(table, {}).update(_split(t))
        ent = [(k, r) for k, _, ents in plan if k[0] == source for r in ents]
        if ent:
            want = pa.array([f"{k[0]}{_SEP}{k[1]}{_SEP}{r.label_set}{_SEP}{r.run_id}" for k, r in ent], pa.string())
            t = hist.scan("entities", source, sorted({k[1] for k, _ in ent}))
            t = t.filter(pc.is_in(_key(t, ("source", "input", "label_set", "run_id")), value_set=want)) if t.num_rows else t
            rows.setdefault("entities", {}).update(_split(t))

    units = []
    for key, p, ents in plan:
        def part(table: str, key=key) -> pa.Table:
            return rows.get(table, {}).get(key, table_schema(table).empty_table())

        lsc = tuple(cur.LabelSetCommit(r.label_set, r.run_id, r.version) for r in ents)
        units.append(cur.CurrentUnit(
            key[0], key[1],
            documents=part("documents") if p else None,
            passages=part("passages") if p else None,
            deletions=part("deletions") if p else None,
            entities=part("entities") if ents else None,
            label_sets=lsc,
            parse_run_id=p.run_id if p else None,
            parse_seq=p.version if p else None,
        ))
    return units


def _mark_applied(root: str, storage_options: Mapping | None, records: list[CommitRecord]) -> None:
    """Append ``records`` to ``current_applied`` (created on first use, protocol 1/2)."""
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    if not records:
        return
    uri = f"{root.rstrip('/')}/{APPLIED_TABLE}"
    opts = _opts(root, storage_options)
    try:
        dt = DeltaTable(uri, storage_options=opts)
    except TableNotFoundError:
        DeltaTable.create(uri, APPLIED_SCHEMA, mode="ignore", name=APPLIED_TABLE,
                          configuration={"delta.checkpointInterval": "20"}, storage_options=opts)
        dt = DeltaTable(uri, storage_options=opts)
    now = datetime.now(timezone.utc)
    data = pa.Table.from_pylist(
        [{"unit_id": r.unit_id, "version": r.version, "kind": r.kind, "applied_at": now} for r in records], schema=APPLIED_SCHEMA)
    write_deltalake(dt, data, mode="append")


def refresh_current(
    root: str,
    storage_options: Mapping | None = None,
    *,
    max_units_per_batch: int = 500,
    max_rows_per_batch: int | None = 20_000_000,
) -> dict:
    """Apply every pending commit to the current tables, in batches; returns what was done.

    A batch holds at most ``max_units_per_batch`` partitions (one ``CurrentUnit`` each: a unit's
    parse commit with its label sets, or its pending entities commits) and, beyond its first
    partition, at most about ``max_rows_per_batch`` history rows (the commits rows' counts).
    Returns ``{"units": commits applied, "partitions", "batches", "seconds", "applied": [...]}``
    (``applied``: each batch's ``apply_units`` result, less its timings' detail).
    """
    if max_units_per_batch < 1:
        raise ValueError("max_units_per_batch must be >= 1")
    t0 = time.perf_counter()
    output = Output(root, storage_options)
    state, sizes = _read_commits(output)  # the commits first: the history opened after holds their files
    todo = _pending(state, applied_versions(root, storage_options))
    result = {"units": 0, "partitions": 0, "batches": 0, "applied": []}
    if not todo:
        result["seconds"] = round(time.perf_counter() - t0, 4)
        return result

    groups: dict[tuple[str, str], list[CommitRecord]] = {}
    for r in todo:
        groups.setdefault((r.source, r.input), []).append(r)
    label_sets = state.label_sets

    def weight(key, recs) -> int:
        if any(r.kind == PARSE for r in recs):
            recs = [*recs, *label_sets.get(key, {}).values()]
        return sum(sizes.get((r.unit_id, r.version), 0) for r in {r.unit_id: r for r in recs}.values())

    batches: list[list] = [[]]
    rows_in = 0
    for key, recs in groups.items():
        w = weight(key, recs)
        b = batches[-1]
        if b and (len(b) >= max_units_per_batch or (max_rows_per_batch is not None and rows_in + w > max_rows_per_batch)):
            batches.append([])
            rows_in = 0
        batches[-1].append((key, recs))
        rows_in += w

    hist = _History(root, storage_options, state)
    for n, parts in enumerate(batches):
        tb = time.perf_counter()
        units = _batch_units(hist, state, parts)
        read_s = time.perf_counter() - tb
        r = cur.apply_units(root, units, storage_options=storage_options, history=hist)
        records = [rec for _, recs in parts for rec in recs]
        _mark_applied(root, storage_options, records)
        r = {k: v for k, v in r.items() if k != "timings"} | {"read_s": round(read_s, 4), "apply_s": r["timings"]["total_s"],
                                                                "seconds": round(time.perf_counter() - tb, 4)}
        log.info("current tables: batch %d/%d applied %d commit(s) of %d partition(s) in %.2f s",
                 n + 1, len(batches), len(records), len(parts), r["seconds"])
        result["applied"].append(r)
        result["units"] += len(records)
        result["partitions"] += len(parts)
        result["batches"] += 1
    tables = cur._Tables(root, storage_options)
    for name in cur.CURRENT_TABLES:  # readers find every current table, empty ones included
        tables.get(name)
    result["seconds"] = round(time.perf_counter() - t0, 4)
    return result
