"""Delta Lake tables: workers write Parquet files, the driver commits them, exactly once per unit.

This is the first building block of the move to Delta Lake (issue 12); nothing in the pipeline
uses it yet. It relies on ``deltalake`` (delta-rs, no JVM).

Layout: each output table is one Delta table under the root::

    <root>/<table>/_delta_log/00000000000000000000.json ...    the commit log
    <root>/<table>/source=<s>/input=<i>/part-<uuid4>.parquet   data tables (schema.TABLES)
    <root>/commits/part-<uuid4>.parquet                        one row per committed unit

Partition columns (``source``, ``input``) are NOT stored in the data files: as in the existing
layout and as Delta expects, they live in the folder names and, authoritatively, in each file's
``partitionValues`` in the log. Files not named by the log are invisible to every Delta reader.

The protocol
------------
1. **Worker** (:func:`write_data_file`): write one zstd Parquet file with a fresh ``uuid4`` name,
   close it (fsync on local disk) and return a small picklable :class:`DataFile`: path relative
   to the table root, size of the written file, partition values, modification time and the
   Delta ``stats`` JSON (``numRecords``, ``minValues``/``maxValues``, ``nullCount``). Names are
   never reused, so a retried task writes a new file and the loser is simply never committed.
2. **Driver** (:meth:`DeltaStore.commit_unit`): a *unit* (one input file, or a group of PMC
   articles) is committed exactly once through Delta *app transactions*:
   ``app_id = "biogliner:<unit_id>"`` with the caller's integer ``version``.

   - Fast path: if the ``commits`` table already holds ``(app_id, >= version)``, the unit is done:
     return ``False`` and touch nothing.
   - Verify every ``DataFile`` exists with its recorded size, before any commit: an add action
     for a missing file is accepted by delta-rs and breaks every read later.
   - For each data table touched, in the fixed order of :data:`DATA_TABLES`: load the table
     (creating it if missing), read ``transaction_version(app_id)``; if it already holds
     ``>= version`` skip the table (an earlier run committed it and crashed later), otherwise
     commit the table's add actions with ``app_transactions=[Transaction(app_id, version)]``
     **through the same DeltaTable object**. delta-rs does not refuse a repeated
     ``(app_id, version)`` by itself; what makes this safe is that the commit's conflict check
     against every commit after the snapshot we checked fails with ``CommitFailedError`` when a
     racing writer committed the same ``app_id`` meanwhile. On ``CommitFailedError`` we reload and
     re-check (bounded attempts).
   - The ``commits`` row is written and committed LAST, with the same transaction. Readers that
     need cross-table consistency join on ``commits``: a unit is visible iff its row is there.

   There is no atomic commit across tables; a crash between two tables leaves a prefix committed,
   and the rerun skips that prefix and commits the rest: the tables end up as after a clean run.
   Two writers racing on one unit: one commits each table, the other skips it (no duplicate).
   A higher ``version`` of a committed unit is committed again, appended: removing what it
   supersedes is the caller's business (not done here).

   :meth:`DeltaStore.commit_units` does the same for a batch of :class:`Unit` with one Delta
   commit per table carrying every unit's app transaction: the driver's cost is per commit, so
   batching completed units multiplies its capacity (``scripts/bench_commit.py``).

   Tables are created on first use with ``mode="error"`` and ``max_commit_retries=0``: delta-rs
   otherwise retries the loser of a creation race as a second ``CREATE TABLE`` at version 1
   (with a new table id), measured in 19 of 20 two-thread races.
3. **Log commits on S3** are safe with concurrent writers because delta-rs writes
   ``_delta_log/N.json`` with ``If-None-Match: *``; the store must honour conditional writes
   (AWS S3, MinIO, GCS and moto do).

Reading: :meth:`DeltaStore.file_uris` lists the committed files (from the log, optionally as of an
earlier version or time); :meth:`DeltaStore.protocol` reports reader/writer protocol versions,
which stay 1/2 (timestamps here are UTC-aware: a time-zone-less one would raise them to 3/7).

Credentials are passed to delta-rs in ``storage_options`` and never logged or shown in reprs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biogliner import io
from biogliner.schema import PARTITION_FIELDS, SCHEMA_VERSION, TABLES

log = logging.getLogger(__name__)

COMMITS_TABLE = "commits"
DATA_TABLES: tuple[str, ...] = tuple(TABLES)  # commit order of the data tables; ``commits`` is last
APP_ID_PREFIX = "biogliner:"

#: One row per committed unit. Row counts per data table are filled in by the driver from the
#: committed files' stats; ``counts`` and ``timings`` carry the caller's extra figures as JSON.
COMMITS = pa.schema(
    [
        pa.field("unit_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("kind", pa.string()),  # "parse" (documents, passages, deletions, errors) | "entities" (one label set)
        pa.field("source", pa.string()),  # the partition the unit's files live in
        pa.field("input", pa.string()),
        pa.field("status", pa.string()),  # "committed" | "failed" (the input could not be read: see errors)
        pa.field("error", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("model", pa.string()),  # checkpoint fingerprint
        pa.field("label_set", pa.string()),  # "name@version"
        pa.field("label_set_hash", pa.string()),
        pa.field("inputs", pa.string()),  # JSON list: the unit's input files [{input, url, size, etag, md5, mtime, status}]
        pa.field("scoring", pa.string()),  # JSON: what besides model and label set changes scores
        pa.field("software", pa.string()),  # JSON: versions of biogliner, ray, torch... that made it
        *[pa.field(f"rows_{t}", pa.int64(), nullable=False) for t in DATA_TABLES],
        pa.field("n_files", pa.int32(), nullable=False),
        pa.field("counts", pa.string()),  # JSON object from the caller (e.g. abstracts, skips)
        pa.field("timings", pa.string()),  # JSON object: the caller's timings plus the driver's
        pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={"biogliner.schema_version": SCHEMA_VERSION, "biogliner.table": COMMITS_TABLE},
)
COMMIT_ROW_KEYS = frozenset(
    {"kind", "source", "input", "status", "error", "run_id", "model", "label_set", "label_set_hash", "inputs", "scoring", "software", "counts", "timings"}
)
_JSON_COLUMNS = ("inputs", "scoring", "software")

#: File schemas (what is inside a Parquet file: partition columns excluded).
FILE_SCHEMAS: dict[str, pa.Schema] = {**TABLES, COMMITS_TABLE: COMMITS}
PARTITION_COLUMNS: dict[str, tuple[str, ...]] = {
    **{t: tuple(f.name for f in PARTITION_FIELDS) for t in TABLES},
    COMMITS_TABLE: (),
}

# Partition values become folder names and URI path segments in the log: keep them plain.
_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9._-]+$")
_STATS_STRING_MAX = 32  # string min/max longer than this are left out of the stats
_COMPRESSION = "zstd"


class DeltaStoreError(RuntimeError):
    """A unit cannot be committed (bad input, missing file, or too many conflicting commits)."""


def table_schema(table: str) -> pa.Schema:
    """The Delta table's logical schema: the file schema plus its partition columns, no metadata."""
    fields = list(FILE_SCHEMAS[table]) + [f for f in PARTITION_FIELDS if f.name in PARTITION_COLUMNS[table]]
    return pa.schema(fields)


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataFile:
    """A closed Parquet file written by a worker: all the driver needs for its Delta add action."""

    table: str
    path: str  # relative to the table root, e.g. "source=pubmed/input=pubmed26n0001/part-<uuid>.parquet"
    size: int  # bytes, taken from the written file
    partition_values: dict[str, str] = field(default_factory=dict)
    modification_time: int = 0  # ms since the epoch
    stats: str = "{}"  # Delta stats JSON

    @property
    def num_records(self) -> int:
        return int(json.loads(self.stats).get("numRecords", 0))


def write_data_file(
    root_url: str,
    table: str,
    data: pa.Table,
    partition_values: Mapping[str, str],
    storage_options: io.StorageOptions | None = None,
) -> DataFile:
    """Write ``data`` as one new zstd Parquet file of ``table`` and return its :class:`DataFile`.

    ``data`` must carry exactly the table's file columns (``schema.TABLES[table]``; partition
    columns go in ``partition_values``, not in the data); it is cast to the explicit schema.
    The file is closed (and fsync'ed on local disk) before this returns; its size is read back
    from the store. Nothing becomes visible until the driver commits the returned ``DataFile``.
    """
    schema = _file_schema(table)
    pvalues = _check_partition_values(table, partition_values)
    names = set(data.column_names)
    stray = sorted(names & set(PARTITION_COLUMNS[table]))
    if stray:
        raise ValueError(f"{table}: partition columns {stray} belong in partition_values, not in the data")
    if names != set(schema.names):
        missing = sorted(set(schema.names) - names)
        extra = sorted(names - set(schema.names))
        raise ValueError(f"{table}: missing columns {missing}, unexpected {extra}")
    data = data.select(schema.names).cast(schema)

    rel = "/".join([*(f"{k}={pvalues[k]}" for k in PARTITION_COLUMNS[table]), f"part-{uuid.uuid4()}.parquet"])
    fs, table_path = io.filesystem(io.join(root_url, table), storage_options)
    path = f"{table_path.rstrip('/')}/{rel}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(data, f, compression=_COMPRESSION)
        if io.protocol_of(root_url) == "file":
            f.flush()
            os.fsync(f.fileno())
    info = fs.info(path)
    return DataFile(
        table=table,
        path=rel,
        size=int(info["size"]),
        partition_values=pvalues,
        modification_time=_mtime_ms(info),
        stats=file_stats(data),
    )


def file_stats(data: pa.Table) -> str:
    """Delta ``stats`` JSON for one file's data (partition columns are not in ``data``).

    ``numRecords``; ``nullCount`` for every column; ``minValues``/``maxValues`` for integer,
    float, timestamp and short string columns (strings only when both bounds have at most
    32 characters, NaN-only float columns and large strings left out: a missing bound is always
    safe, a wrong one would make readers skip data).
    """
    min_values: dict[str, Any] = {}
    max_values: dict[str, Any] = {}
    null_count: dict[str, int] = {}
    for name, column in zip(data.column_names, data.columns):
        t = column.type
        null_count[name] = column.null_count
        if column.null_count == len(column):
            continue
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_timestamp(t):
            mm = pc.min_max(column).as_py()
            lo, hi = mm["min"], mm["max"]
            if lo is None or hi is None:
                continue
            if pa.types.is_floating(t):
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    continue
            elif pa.types.is_string(t):
                if len(lo) > _STATS_STRING_MAX or len(hi) > _STATS_STRING_MAX:
                    continue
            elif pa.types.is_timestamp(t):
                if t.tz is None:
                    continue
                lo, hi = _iso_ms(lo, up=False), _iso_ms(hi, up=True)
            min_values[name], max_values[name] = lo, hi
    stats = {"numRecords": data.num_rows, "minValues": min_values, "maxValues": max_values, "nullCount": null_count}
    return json.dumps(stats, allow_nan=False, separators=(",", ":"))


def _iso_ms(value: datetime, up: bool) -> str:
    """Delta's timestamp stats format (ms precision, UTC); the max is rounded up to stay a bound."""
    value = value.astimezone(timezone.utc)
    ms = value.microsecond // 1000
    if up and value.microsecond % 1000:
        ms += 1
    value = value.replace(microsecond=0) + timedelta(milliseconds=ms)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _mtime_ms(info: Mapping[str, Any]) -> int:
    for key in ("mtime", "LastModified", "last_modified", "updated"):
        v = info.get(key)
        if isinstance(v, datetime):
            return int(v.timestamp() * 1000)
        if isinstance(v, (int, float)):
            return int(v * 1000)
    return int(time.time() * 1000)


def _file_schema(table: str) -> pa.Schema:
    try:
        return FILE_SCHEMAS[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(FILE_SCHEMAS)}") from None


def _check_partition_values(table: str, values: Mapping[str, str]) -> dict[str, str]:
    expected = PARTITION_COLUMNS[table]
    if set(values) != set(expected):
        raise ValueError(f"{table}: partition values must name exactly {list(expected)}, got {sorted(values)}")
    out = {}
    for k in expected:
        v = values[k]
        if not isinstance(v, str) or not _PARTITION_VALUE.match(v):
            raise ValueError(f"{table}: partition value {k}={v!r} must match [A-Za-z0-9._-]+")
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# storage options
# ---------------------------------------------------------------------------------------------
def delta_storage_options(root_url: str, storage_options: io.StorageOptions | None = None) -> dict[str, str]:
    """delta-rs ``storage_options`` from biogliner's fsspec-style ones.

    For ``s3://``: ``endpoint_url`` (top level or in ``client_kwargs``, else from the environment
    as :func:`biogliner.io.resolve_storage_options` does) -> ``AWS_ENDPOINT_URL`` (plus
    ``AWS_ALLOW_HTTP=true`` for an ``http://`` endpoint), ``key``/``secret``/``token`` ->
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``region_name`` ->
    ``AWS_REGION`` (else ``AWS_REGION``/``AWS_DEFAULT_REGION`` from the environment, else
    ``us-east-1`` when a custom endpoint is set). Keys already in delta-rs form (``AWS_*``) pass
    through. Missing credentials are left to delta-rs's own AWS chain. Local paths: ``{}``.
    """
    if io.protocol_of(root_url) not in ("s3", "s3a"):
        return {}
    opts = io.resolve_storage_options(root_url, storage_options)
    ck = dict(opts.get("client_kwargs") or {})
    out: dict[str, str] = {k: str(v) for k, v in opts.items() if k.isupper() and k.startswith("AWS_")}
    endpoint = opts.get("endpoint_url") or ck.get("endpoint_url")
    if endpoint:
        out["AWS_ENDPOINT_URL"] = str(endpoint)
        if str(endpoint).lower().startswith("http://"):
            out["AWS_ALLOW_HTTP"] = "true"
    for src, dst in (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
        ("aws_session_token", "AWS_SESSION_TOKEN"),
    ):
        value = opts.get(src) or ck.get(src)
        if value:
            out[dst] = str(value)
    region = ck.get("region_name") or opts.get("region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        out.setdefault("AWS_REGION", str(region))
    elif endpoint:
        out.setdefault("AWS_REGION", "us-east-1")
    return out


# ---------------------------------------------------------------------------------------------
# driver side
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One unit to commit: its files (all tables) and the caller's part of its ``commits`` row."""

    unit_id: str
    version: int
    files: tuple[DataFile, ...] | list[DataFile] = ()
    commit_row: Mapping[str, Any] = field(default_factory=dict)

    @property
    def app_id(self) -> str:
        return APP_ID_PREFIX + self.unit_id


class DeltaStore:
    """The driver's view of the Delta tables under ``root_url``; commits units exactly once.

    Keeps one ``DeltaTable`` object per table and refreshes it incrementally before each check.
    Not thread-safe: one driver thread commits (workers only call :func:`write_data_file`).

    ``checkpoint_interval`` is set as ``delta.checkpointInterval`` on tables this store creates:
    delta-rs replays every log entry since the last checkpoint on each refresh and commit, so the
    driver's cost per commit grows until the next checkpoint (measured on local disk, 3 tables
    per unit, 200 units: 110 ms/unit with Delta's default of 100, 45 ms with 10 or 20).
    """

    def __init__(
        self,
        root_url: str,
        storage_options: io.StorageOptions | None = None,
        *,
        max_attempts: int = 8,
        retry_backoff_s: float = 0.05,
        checkpoint_interval: int = 20,
    ):
        self.root_url = root_url.rstrip("/")
        self._fs_options = dict(storage_options or {})
        self._delta_options = delta_storage_options(self.root_url, storage_options)
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.checkpoint_interval = int(checkpoint_interval)
        self._tables: dict[str, Any] = {}  # table name -> deltalake.DeltaTable (latest)

    def __repr__(self) -> str:  # never shows storage options (they may hold credentials)
        return f"DeltaStore({self.root_url!r})"

    def table_uri(self, table: str) -> str:
        _file_schema(table)
        return f"{self.root_url}/{table}"

    # -- commit ---------------------------------------------------------------------------------
    def commit_unit(
        self,
        unit_id: str,
        version: int,
        files: list[DataFile],
        commit_row: Mapping[str, Any],
        *,
        fault: Callable[[str], None] | None = None,
    ) -> bool:
        """Commit one unit's files exactly once; ``False`` if it was already fully committed.

        ``commit_row`` may hold ``run_id``, ``model``, ``label_set``, ``label_set_hash`` and the
        JSON-able dicts ``counts`` and ``timings``; row counts per table come from the files.
        ``fault(point)``, for tests, is called at ``"after:<table>"`` for each data table handled
        and at ``"before:commits"``: raising there simulates a crash between commits.
        """
        return self.commit_units([Unit(unit_id, version, list(files), dict(commit_row))], fault=fault)[unit_id]

    def commit_units(self, units: list[Unit], *, fault: Callable[[str], None] | None = None) -> dict[str, bool]:
        """Commit several units with one Delta commit per table; ``{unit_id: committed now}``.

        The same protocol as :meth:`commit_unit`, batched: each table's commit carries the add
        actions and the app transactions of every unit of the batch that the table does not hold
        yet, so exactly-once still holds per unit (a rerun or a racing writer skips, unit by
        unit, what is already there). The driver's cost is per commit, not per unit: batching
        completed units is how the driver keeps up with many workers.
        """
        t0 = time.perf_counter()
        by_unit: dict[str, dict[str, list[DataFile]]] = {}
        for u in units:
            self._check_unit(u)
            if u.unit_id in by_unit:
                raise ValueError(f"unit {u.unit_id} appears twice in one batch")
            by_unit[u.unit_id] = {}
            for f in u.files:
                by_unit[u.unit_id].setdefault(f.table, []).append(f)

        result = {u.unit_id: False for u in units}
        commits = self._table(COMMITS_TABLE, create=False)
        pending = [u for u in units if commits is None or not _holds(commits, u)]
        if not pending:
            return result
        self.verify_files([f for u in pending for f in u.files])

        for table in DATA_TABLES:
            todo = [u for u in pending if table in by_unit[u.unit_id]]
            if todo:
                self._commit_table(table, todo, lambda us, t=table: [_add_action(f) for u in us for f in by_unit[u.unit_id][t]])
                if fault:
                    fault(f"after:{table}")
        if fault:
            fault("before:commits")

        data_s = round(time.perf_counter() - t0, 4)

        def commits_file(us: list[Unit]) -> list:
            row = pa.concat_tables([self._commits_row(u, by_unit[u.unit_id], data_s, len(units)) for u in us])
            return [_add_action(write_data_file(self.root_url, COMMITS_TABLE, row, {}, self._fs_options))]

        done = self._commit_table(COMMITS_TABLE, pending, commits_file)
        for u in done:
            result[u.unit_id] = True
        if done:
            log.info("committed %d unit(s) in %.3f s: %s", len(done), time.perf_counter() - t0, ", ".join(u.unit_id for u in done[:5]))
        return result

    def is_committed(self, unit_id: str, version: int = 0) -> bool:
        """Whether the ``commits`` table holds ``unit_id`` at ``version`` or later."""
        dt = self._table(COMMITS_TABLE, create=False)
        return dt is not None and _holds(dt, Unit(unit_id, version))

    def verify_files(self, files: list[DataFile]) -> None:
        """Raise :class:`DeltaStoreError` naming the first file that is missing or has another size."""
        if not files:
            return
        fs, base = io.filesystem(self.root_url, self._fs_options)
        fs.invalidate_cache()  # object-store listings may be cached per process: ask afresh
        for f in files:
            url = io.join(self.root_url, f.table, f.path)
            path = f"{base.rstrip('/')}/{f.table}/{f.path}"
            try:
                size = fs.info(path)["size"]
            except FileNotFoundError:
                raise DeltaStoreError(f"data file {url} is missing: refusing to commit it") from None
            if int(size) != f.size:
                raise DeltaStoreError(f"data file {url} has {size} bytes, {f.size} recorded: refusing to commit it")

    @staticmethod
    def _check_unit(u: Unit) -> None:
        if not u.unit_id:
            raise ValueError("empty unit_id")
        if not isinstance(u.version, int) or u.version < 0:
            raise ValueError(f"unit {u.unit_id}: version must be a non-negative int, got {u.version!r}")
        unknown = set(u.commit_row) - COMMIT_ROW_KEYS
        if unknown:
            raise ValueError(f"unit {u.unit_id}: unknown commit_row keys {sorted(unknown)}; allowed {sorted(COMMIT_ROW_KEYS)}")
        for f in u.files:
            if f.table not in TABLES:
                raise ValueError(f"unit {u.unit_id}: {f.path}: table {f.table!r} is not a data table")
            _check_partition_values(f.table, f.partition_values)
            if f.path.startswith("/") or ".." in f.path.split("/") or "://" in f.path:
                raise ValueError(f"unit {u.unit_id}: file path must be relative to its table root: {f.path!r}")

    def _commits_row(self, u: Unit, files: dict[str, list[DataFile]], data_s: float, batch: int) -> pa.Table:
        row = u.commit_row
        timings = {**dict(row.get("timings") or {}), "driver_data_commit_s": data_s, "driver_batch_units": batch}
        values = {
            "unit_id": u.unit_id,
            "version": u.version,
            **{k: row.get(k) for k in ("kind", "source", "input", "status", "error", "run_id", "model", "label_set", "label_set_hash")},
            **{k: (None if row.get(k) is None else json.dumps(row[k], sort_keys=True)) for k in _JSON_COLUMNS},
            **{f"rows_{t}": sum(f.num_records for f in files.get(t, [])) for t in DATA_TABLES},
            "n_files": sum(len(v) for v in files.values()),
            "counts": json.dumps(dict(row.get("counts") or {}), sort_keys=True),
            "timings": json.dumps(timings, sort_keys=True),
            "committed_at": datetime.now(timezone.utc),
        }
        return pa.Table.from_pylist([values], schema=COMMITS)

    def _commit_table(self, table: str, units: list[Unit], actions_for: Callable[[list[Unit]], list]) -> list[Unit]:
        """Check-then-commit ``table`` for those of ``units`` it does not hold yet; returns them.

        The check (``transaction_version``) and the commit go through the same ``DeltaTable``
        object, so the commit's read version is the snapshot we checked: if another writer
        commits the same app id after it, delta-rs's conflict check fails our commit with
        ``CommitFailedError`` and we reload and check again. Commits by other writers for other
        app ids do not conflict (delta-rs rebases a blind append on them by itself).
        """
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import CommitProperties, Transaction

        for attempt in range(self.max_attempts):
            dt = self._table(table, create=True)
            todo = [u for u in units if not _holds(dt, u)]
            if not todo:
                return []
            try:
                dt.create_write_transaction(
                    actions_for(todo),
                    mode="append",
                    schema=dt.schema(),
                    partition_by=list(PARTITION_COLUMNS[table]) or None,
                    commit_properties=CommitProperties(app_transactions=[Transaction(u.app_id, u.version) for u in todo]),
                )
            except CommitFailedError as e:
                log.info("%s: commit conflicted (attempt %d), checking again: %s", table, attempt + 1, e)
                self._sleep(attempt)
                continue
            return todo  # the object is refreshed on its next use (_table)
        raise DeltaStoreError(f"{table}: could not commit {len(units)} unit(s) after {self.max_attempts} conflicting attempts")

    def _table(self, table: str, create: bool):
        """The latest state of ``table`` (refreshed); created when missing and ``create``.

        Creation races (two writers creating the same table) are settled by the log: exactly one
        writes version 0 (a conditional put), the other's create fails (it must not be retried,
        see below) and it loads the table on its next attempt.
        """
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError, TableNotFoundError
        from deltalake.transaction import CommitProperties

        dt = self._tables.get(table)
        if dt is not None:
            dt.update_incremental()
            return dt
        uri = self.table_uri(table)
        for attempt in range(self.max_attempts):
            try:
                dt = DeltaTable(uri, storage_options=self._delta_options or None)
            except TableNotFoundError:
                if not create:
                    return None
                try:
                    dt = DeltaTable.create(
                        uri,
                        table_schema(table),
                        mode="error",
                        partition_by=list(PARTITION_COLUMNS[table]) or None,
                        name=table,
                        description=f"biogliner {table} (schema version {SCHEMA_VERSION})",
                        configuration={"delta.checkpointInterval": str(self.checkpoint_interval)},
                        storage_options=self._delta_options or None,
                        # No retry: delta-rs otherwise retries a create that lost the race to
                        # version 0 as version 1, a second CREATE TABLE with a new table id
                        # (measured: 19 of 20 two-thread races). Without it the loser fails here.
                        commit_properties=CommitProperties(max_commit_retries=0),
                    )
                except DeltaError as e:  # lost a creation race: load it next time round
                    log.info("%s: create lost a race (attempt %d): %s", table, attempt + 1, e)
                    self._sleep(attempt)
                    continue
            expected = list(PARTITION_COLUMNS[table])
            found = list(dt.metadata().partition_columns)
            if found != expected:
                raise DeltaStoreError(f"{uri} is partitioned by {found}, expected {expected}")
            columns = {f.name for f in dt.schema().fields}
            mine = set(table_schema(table).names)
            if columns != mine:  # another schema version wrote it: never mix (docs/sql.md, schema evolution)
                raise DeltaStoreError(
                    f"{uri} has the columns of another biogliner schema (missing here: {sorted(columns - mine)}, "
                    f"missing there: {sorted(mine - columns)}); this biogliner writes schema version {SCHEMA_VERSION}: "
                    "write to a new output root"
                )
            self._tables[table] = dt
            return dt
        raise DeltaStoreError(f"{uri}: could neither load nor create the table after {self.max_attempts} attempts")

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.retry_backoff_s * (2 ** min(attempt, 5)) * (0.5 + random.random()))

    # -- reading --------------------------------------------------------------------------------
    def _snapshot(self, table: str, as_of: int | datetime | str | None = None):
        from deltalake import DeltaTable

        uri = self.table_uri(table)
        opts = self._delta_options or None
        if as_of is None or isinstance(as_of, int):
            return DeltaTable(uri, version=as_of, storage_options=opts)
        dt = DeltaTable(uri, storage_options=opts)
        dt.load_as_version(as_of)
        return dt

    def file_uris(self, table: str, as_of: int | datetime | str | None = None) -> list[str]:
        """URIs of the committed data files of ``table`` (latest, or as of a version or time).

        Only files named by the log; ``[]`` when the table does not exist yet (``as_of=None``).
        """
        from deltalake.exceptions import TableNotFoundError

        try:
            dt = self._snapshot(table, as_of)
        except TableNotFoundError:
            if as_of is None:
                return []
            raise
        return sorted(dt.file_uris())

    def version(self, table: str) -> int | None:
        """The table's latest version, ``None`` if it does not exist."""
        from deltalake.exceptions import TableNotFoundError

        try:
            return self._snapshot(table).version()
        except TableNotFoundError:
            return None

    def protocol(self, table: str) -> tuple[int, int]:
        """``(min_reader_version, min_writer_version)`` of ``table``'s latest version."""
        p = self._snapshot(table).protocol()
        return (p.min_reader_version, p.min_writer_version)


def _holds(dt, u: Unit) -> bool:
    """Whether the table snapshot ``dt`` holds ``u``'s app transaction at its version or later."""
    held = dt.transaction_version(u.app_id)
    return held is not None and held >= u.version


def _add_action(f: DataFile):
    from deltalake.transaction import AddAction

    return AddAction(
        path=f.path,
        size=f.size,
        partition_values=dict(f.partition_values),
        modification_time=f.modification_time,
        data_change=True,
        stats=f.stats,
    )
