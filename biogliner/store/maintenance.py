"""Maintenance of an output root's Delta tables: compact small files, remove unreferenced ones,
read the commit history (``biogliner store optimize|vacuum|history``; the CLI only formats).

- :func:`optimize` compacts each table's small files (``DeltaTable.optimize.compact``; per
  partition, file order kept). Every unit commit adds a few small files, so a table read after
  a year of nightlies is thousands of files; compaction rewrites them into few large ones. It
  changes no row, keeps the app transactions (``txn`` actions survive in the log and in
  checkpoints, so a rerun still skips committed units) and the protocol (reader 1 / writer 2,
  checked after each table). It commits with ``dataChange = false`` and does not conflict with
  the appends of a running job; it does conflict with a concurrent MERGE/delete (the
  ``current_*`` tables while a nightly applies them): that table is reported failed, rerun later.
- :func:`vacuum` deletes the files the log no longer names (replaced by a compaction or a MERGE)
  and, in full mode (the default), every file in a table's folder that the log never named
  (worker files of crashed runs), once older than the retention. Dry run by default. Below
  :data:`MIN_RETENTION_HOURS` it refuses unless forced: a running job's workers write files that
  its driver commits later (minutes to hours), and readers of older versions (time travel,
  ``biogliner sql --as-of``) need the files those versions name. Run summaries (``_runs/``) are
  outside every table: reported, never deleted.
- :func:`history` lists a table's versions (newest first) from its log entries and, per
  version, the units whose app transactions it carries (``txn`` actions of
  ``_delta_log/<version>.json``); for the ``commits`` table each unit is joined with its
  ``commits`` row (kind, status, run).

Tables handled: the history tables (:data:`biogliner.store.delta.DATA_TABLES`), ``commits``
and the maintained ``current_*`` tables (:mod:`biogliner.store.current`); other folders under
the root are never touched. Storage options are fsspec style and converted for delta-rs with
:func:`biogliner.store.delta.delta_storage_options`; they are never logged or returned.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from biogliner import io
from biogliner.store import layout
from biogliner.store.current import CURRENT_TABLES, LABEL_SETS_TABLE, PMC_EVENTS_TABLE, STATE_TABLE
from biogliner.store.delta import APP_ID_PREFIX, COMMITS_TABLE, DATA_TABLES, delta_storage_options

log = logging.getLogger(__name__)

#: Every Delta table an output root may hold, in the order maintenance visits them.
TABLES: tuple[str, ...] = (*DATA_TABLES, COMMITS_TABLE, *CURRENT_TABLES, STATE_TABLE, PMC_EVENTS_TABLE, LABEL_SETS_TABLE)
#: The protocol biogliner writes (readable by every Delta reader); compaction must keep it.
PROTOCOL = (1, 2)
DEFAULT_RETENTION_HOURS = 168  # Delta's default delta.deletedFileRetentionDuration (7 days)
MIN_RETENTION_HOURS = 24


class MaintenanceError(RuntimeError):
    """The output root cannot be maintained (not an output root, no such table, unreadable)."""


class NotAnOutputRoot(MaintenanceError):
    """The URL holds none of the output tables (or not the table asked for)."""


class RetentionTooShort(ValueError):
    """A vacuum retention below :data:`MIN_RETENTION_HOURS` without ``force_short_retention``."""


# --------------------------------------------------------------------------------------------- tables
def _check_names(tables: Iterable[str] | None) -> list[str] | None:
    if tables is None:
        return None
    names = list(dict.fromkeys(tables))
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; expected any of {', '.join(TABLES)}")
    return names


def _open_tables(root: str, storage_options: Mapping | None, tables: Iterable[str] | None) -> dict[str, Any]:
    """``{name: DeltaTable}`` of the tables to handle: the named ones (each must exist), or every
    known table present under ``root`` (at least one must be)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    root = root.rstrip("/")
    names = _check_names(tables)
    opts = delta_storage_options(root, dict(storage_options or {})) or None
    out: dict[str, Any] = {}
    missing = []
    for name in names or TABLES:
        try:
            out[name] = DeltaTable(f"{root}/{name}", storage_options=opts)
        except TableNotFoundError:
            missing.append(name)
        except (DeltaError, OSError) as e:  # unreachable store, no permission, a broken log...
            raise MaintenanceError(f"{root}/{name}: cannot read the Delta table: {e}") from None
    if names is not None and missing and any(DeltaTable.is_deltatable(f"{root}/{t}", opts) for t in TABLES):
        raise NotAnOutputRoot(f"{root}/{missing[0]} is not a Delta table: this output root has no {missing[0]} table")
    if not out or (names is not None and missing):
        raise NotAnOutputRoot(
            f"{root} is not a biogliner output root: none of its tables ({', '.join(TABLES)}) is a Delta table there; "
            "expected the --output of `biogliner annotate` / `biogliner nightly`"
        )
    return out


def _protocol(dt) -> tuple[int, int]:
    p = dt.protocol()
    return (p.min_reader_version, p.min_writer_version)


def _naive_timestamps(dt) -> list[str]:
    """Columns whose type is a time-zone-less timestamp: writing them needs ``timestampNtz`` (3/7)."""
    import pyarrow as pa

    schema = dt.schema().to_arrow()
    schema = schema if isinstance(schema, pa.Schema) else pa.schema(schema)
    return [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.tz is None]


def _metric_files(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------------------------- optimize
def optimize(
    root: str,
    storage_options: Mapping | None = None,
    tables: Iterable[str] | None = None,
    target_size: int | None = None,
) -> list[dict]:
    """Compact the small files of each table (``tables``: names, default every table present).

    ``target_size``: approximate size of the written files in bytes (delta-rs default: the
    table's ``delta.targetFileSize`` or 100 MB). Returns one dict per table: ``table``,
    ``version_before``/``version_after``, ``files_before``/``files_after``, ``files_removed``,
    ``files_added``, ``bytes_removed``, ``bytes_added``, ``partitions_optimized``, ``protocol``
    (after), ``seconds`` and ``error`` (``None``, or why this table was refused or failed; the
    other tables are still handled).
    """
    from deltalake import WriterProperties
    from deltalake.exceptions import DeltaError

    if target_size is not None and target_size <= 0:
        raise ValueError(f"target_size must be positive, got {target_size}")
    results = []
    for name, dt in _open_tables(root, storage_options, tables).items():
        t0 = time.perf_counter()
        before = _protocol(dt)
        res: dict[str, Any] = {
            "table": name,
            "version_before": dt.version(),
            "version_after": dt.version(),
            "files_before": len(dt.file_uris()),
            "files_after": None,
            "files_removed": 0,
            "files_added": 0,
            "bytes_removed": 0,
            "bytes_added": 0,
            "partitions_optimized": 0,
            "protocol": list(before),
            "seconds": None,
            "error": None,
        }
        naive = _naive_timestamps(dt)
        if naive:
            res["error"] = (
                f"refused: time-zone-less timestamp column(s) {naive}; rewriting them needs the timestampNtz "
                f"feature (protocol 3/7), which readers of protocol {PROTOCOL[0]}/{PROTOCOL[1]} cannot read"
            )
            res["files_after"] = res["files_before"]
            results.append(res)
            continue
        try:
            metrics = dt.optimize.compact(target_size=target_size, writer_properties=WriterProperties(compression="ZSTD"))
        except (DeltaError, OSError) as e:  # e.g. a concurrent MERGE on a current_* table
            res["error"] = f"{type(e).__name__}: {e}"
            res["files_after"] = res["files_before"]
        else:
            dt.update_incremental()
            added, removed = _metric_files(metrics.get("filesAdded")), _metric_files(metrics.get("filesRemoved"))
            after = _protocol(dt)
            res.update(
                version_after=dt.version(),
                files_after=len(dt.file_uris()),
                files_removed=int(metrics.get("numFilesRemoved", 0)),
                files_added=int(metrics.get("numFilesAdded", 0)),
                bytes_removed=int(removed.get("totalSize") or 0),
                bytes_added=int(added.get("totalSize") or 0),
                partitions_optimized=int(metrics.get("partitionsOptimized", 0)),
                protocol=list(after),
            )
            if after != before:
                res["error"] = (
                    f"the compaction raised the protocol from {before[0]}/{before[1]} to {after[0]}/{after[1]}: "
                    "readers limited to the older protocol can no longer read this table"
                )
        res["seconds"] = round(time.perf_counter() - t0, 3)
        if res["error"]:
            log.warning("optimize %s: %s", name, res["error"])
        results.append(res)
    return results


# --------------------------------------------------------------------------------------------- vacuum
def check_retention(retention_hours: int, force_short_retention: bool = False) -> None:
    """Raise :class:`RetentionTooShort` (or ``ValueError``) for a retention vacuum must not use."""
    if not isinstance(retention_hours, int) or isinstance(retention_hours, bool) or retention_hours < 0:
        raise ValueError(f"retention_hours must be a non-negative integer, got {retention_hours!r}")
    if retention_hours < MIN_RETENTION_HOURS and not force_short_retention:
        raise RetentionTooShort(
            f"a retention of {retention_hours} h is below {MIN_RETENTION_HOURS} h: vacuum would delete files that are not "
            "garbage yet. A running job's workers write data files that its driver commits later (an uncommitted "
            "file looks exactly like a crashed run's leftover), and readers of older table versions (time travel, "
            "`biogliner sql --as-of`) need the files those versions name. Use a retention longer than your longest "
            "job and your oldest --as-of, or force it when no job runs and nobody reads old versions"
        )


def vacuum(
    root: str,
    storage_options: Mapping | None = None,
    tables: Iterable[str] | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    *,
    apply: bool = False,
    force_short_retention: bool = False,
    full: bool = True,
) -> dict:
    """List (dry run, the default) or delete (``apply``) files no table version still needs.

    Per table, the files older than ``retention_hours`` that the log no longer names (replaced
    by a compaction or a MERGE) and, with ``full`` (default), also the files the log never
    named: worker files of runs that crashed before their commit. Without ``full`` only the
    files the log removed are considered (never a running job's uncommitted files, whatever the
    retention). Only files present before the call are reported: delta-rs keeps listing removed
    files it already deleted until a checkpoint drops them from the log.
    The retention is biogliner's (:func:`check_retention`), not the tables'
    ``delta.deletedFileRetentionDuration``.

    Returns ``{"retention_hours", "dry_run", "full", "tables": [{"table", "files" (paths
    relative to the table), "count", "version_before", "version_after", "error"}],
    "run_summaries": {...}}`` (see :func:`run_summaries`; never deleted).
    """
    from deltalake.exceptions import DeltaError

    check_retention(retention_hours, force_short_retention)
    out_tables = []
    for name, dt in _open_tables(root, storage_options, tables).items():
        res: dict[str, Any] = {"table": name, "files": [], "count": 0, "version_before": dt.version(), "version_after": dt.version(), "error": None}
        try:
            present = _table_files(root, name, storage_options)
            files = dt.vacuum(
                retention_hours=retention_hours,
                dry_run=not apply,
                # our own minimum (check_retention) replaces delta-rs's check against the table's
                # deletedFileRetentionDuration (7 days unless set), which would refuse 24..167 h
                enforce_retention_duration=False,
                full=full,
            )
        except (DeltaError, OSError) as e:
            res["error"] = f"{type(e).__name__}: {e}"
        else:
            # delta-rs lists the log's removed files until a checkpoint drops them, deleted or
            # not: report only the files that were there before this call
            res["files"] = sorted(f for f in files if unquote(f) in present)
            res["count"] = len(res["files"])
            if apply:
                dt.update_incremental()
                res["version_after"] = dt.version()
        out_tables.append(res)
    return {
        "retention_hours": retention_hours,
        "dry_run": not apply,
        "full": full,
        "tables": out_tables,
        "run_summaries": run_summaries(root, storage_options),
    }


def _table_files(root: str, table: str, storage_options: Mapping | None) -> set[str]:
    """Paths (relative to the table, unquoted) of the files in a table's folder, its log excluded."""
    fs, base = io.filesystem(io.join(root, table), dict(storage_options or {}))
    fs.invalidate_cache()
    base = base.rstrip("/") + "/"
    try:
        found = fs.find(base)
    except FileNotFoundError:
        return set()
    out = set()
    for p in found:
        rel = p[len(base):] if p.startswith(base) else p.split(f"/{table}/", 1)[-1]
        if not rel.startswith("_delta_log/"):
            out.add(unquote(rel))
    return out


def run_summaries(root: str, storage_options: Mapping | None = None) -> dict:
    """What ``<root>/_runs/`` holds (one JSON summary per run): ``count``, ``bytes``, ``oldest``
    and ``newest`` (names by modification time). Reported by vacuum, never deleted: they are
    small and they are the only record of failed runs."""
    fs, base = io.filesystem(io.join(root, layout.RUNS_DIR), dict(storage_options or {}))
    fs.invalidate_cache(base)
    try:
        entries = [e for e in fs.ls(base, detail=True) if e.get("type") == "file"]
    except (FileNotFoundError, OSError):
        entries = []
    if not entries:
        return {"dir": layout.RUNS_DIR, "count": 0, "bytes": 0, "oldest": None, "newest": None}

    def mtime(e) -> float:
        for k in ("mtime", "LastModified", "last_modified", "updated"):
            v = e.get(k)
            if isinstance(v, datetime):
                return v.timestamp()
            if isinstance(v, (int, float)):
                return float(v)
        return 0.0

    entries.sort(key=lambda e: (mtime(e), e["name"]))
    return {
        "dir": layout.RUNS_DIR,
        "count": len(entries),
        "bytes": int(sum(int(e.get("size") or 0) for e in entries)),
        "oldest": entries[0]["name"].rsplit("/", 1)[-1],
        "newest": entries[-1]["name"].rsplit("/", 1)[-1],
    }


# --------------------------------------------------------------------------------------------- history
def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    t = datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _log_entry(root: str, table: str, version: int, storage_options: Mapping | None) -> list[dict] | None:
    """The actions of ``<table>/_delta_log/<version>.json``; ``None`` when it is gone (log cleanup)."""
    url = io.join(root, table, "_delta_log", f"{version:020d}.json")
    fs, path = io.filesystem(url, dict(storage_options or {}))
    fs.invalidate_cache(path.rsplit("/", 1)[0])  # a cached listing of the log would miss newer entries
    try:
        with fs.open(path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        return None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _commit_rows(dt) -> dict[tuple[str, int], dict]:
    cols = ["unit_id", "version", "kind", "source", "input", "status", "run_id", "label_set"]
    t = dt.to_pyarrow_table(columns=cols)
    out: dict[tuple[str, int], dict] = {}
    for r in t.to_pylist():
        out.setdefault((r["unit_id"], int(r["version"])), r)
    return out


def history(
    root: str,
    storage_options: Mapping | None = None,
    table: str = COMMITS_TABLE,
    limit: int | None = None,
) -> list[dict]:
    """The versions of ``table`` (default ``commits``), newest first, at most ``limit``.

    Read from the log entries themselves (``_delta_log/<version>.json``: the ``commitInfo``,
    ``add``, ``remove`` and ``txn`` actions; delta-rs 1.6.6's ``DeltaTable.history()`` hung on
    S3 in our tests). Each: ``table``, ``version``, ``timestamp`` (ISO, UTC), ``operation``
    (``CREATE TABLE``, ``WRITE``, ``OPTIMIZE``, ``MERGE``, ``VACUUM START``...),
    ``parameters``, ``files_added``, ``files_removed`` and ``units``: the units whose app
    transactions the version carries, ``[{"unit_id", "version"}]`` (for ``commits`` also
    ``kind``, ``source``, ``input``, ``status``, ``run_id``, ``label_set`` from the unit's
    row), ``[]`` for a version that committed no unit (a compaction, a vacuum, a current-table
    update). Versions whose log entry has been cleaned up (``delta.logRetentionDuration``, 30
    days by default, at a checkpoint) are not listed: the history starts after them.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    (dt,) = _open_tables(root, storage_options, [table]).values()
    rows = _commit_rows(dt) if table == COMMITS_TABLE else {}
    latest = dt.version()
    oldest = 0 if limit is None else max(0, latest - limit + 1)
    out = []
    for version in range(latest, oldest - 1, -1):
        actions = _log_entry(root, table, version, storage_options)
        if actions is None:  # cleaned up, and so is every older entry
            break
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        units = []
        for a in actions:
            txn = a.get("txn")
            if not txn or not str(txn.get("appId", "")).startswith(APP_ID_PREFIX):
                continue
            unit = {"unit_id": txn["appId"][len(APP_ID_PREFIX):], "version": int(txn["version"])}
            row = rows.get((unit["unit_id"], unit["version"]))
            if row is not None:
                unit.update({k: row[k] for k in ("kind", "source", "input", "status", "run_id", "label_set")})
            units.append(unit)
        out.append(
            {
                "table": table,
                "version": version,
                "timestamp": _iso_ms(info.get("timestamp")),
                "operation": info.get("operation"),
                "parameters": info.get("operationParameters") or {},
                "files_added": sum(1 for a in actions if "add" in a),
                "files_removed": sum(1 for a in actions if "remove" in a),
                "units": units,
            }
        )
    return out
