"""``biogliner store optimize|vacuum|history|refresh``: maintain an output root's Delta tables.

  optimize  compact each table's small files (rows, app transactions and protocol 1/2 kept)
  vacuum    list (default) or delete (--apply) files no version needs, older than the retention
  history   a table's versions with the units each committed (default: the commits table)
  refresh   apply committed units the maintained current_* tables lack (--check: only count them)

See docs/sql.md, "Maintenance". Exit status: 0 ok, 1 a table failed (optimize/vacuum; the others
are still handled), 2 usage error (a retention below 24 h without --force-short-retention
included), 3 not a biogliner output root (or it has no such table, or a table cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3


def register(subparsers) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", "-o", required=True, metavar="URL", help="output root (local path or s3://...)")
    common.add_argument("--storage-options", metavar="JSON", help="fsspec storage options for s3:// etc., as JSON")
    common.add_argument("--format", choices=("table", "json"), default="table", help="readable table (default) or JSON lines")

    p = subparsers.add_parser(
        "store",
        help="maintain an output root's Delta tables (optimize, vacuum, history, refresh)",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="store_command", metavar="ACTION")

    o = sub.add_parser("optimize", parents=[common], help="compact small files of every table (or --table T)")
    o.add_argument("--table", action="append", metavar="T", help="only this table (repeatable); default every table present")
    o.add_argument("--target-size", type=float, metavar="MB", help="approximate size of the written files in MB (default 100)")
    o.set_defaults(func=run_optimize)

    v = sub.add_parser("vacuum", parents=[common], help="list (or --apply: delete) files no table version needs")
    v.add_argument("--table", action="append", metavar="T", help="only this table (repeatable); default every table present")
    v.add_argument("--retention-hours", type=int, default=168, metavar="N",
                   help="only files older than N hours (default 168, Delta's default; below 24 refused)")
    v.add_argument("--force-short-retention", action="store_true",
                   help="allow a retention below 24 h: only when no job runs and nobody reads older versions")
    v.add_argument("--apply", action="store_true", help="delete the files (default: dry run, nothing deleted)")
    v.add_argument("--lite", action="store_true",
                   help="only files the log removed (never a job's uncommitted files); default also files the log "
                        "never named (left by crashed runs)")
    v.add_argument("--show", type=int, default=20, metavar="N", help="readable table: list at most N files per table (default 20)")
    v.set_defaults(func=run_vacuum)

    h = sub.add_parser("history", parents=[common], help="versions of the commits table (or --table T) and their units")
    h.add_argument("--table", default="commits", metavar="T", help="the table (default commits)")
    h.add_argument("--limit", type=int, default=20, metavar="N", help="the N latest versions (default 20)")
    h.add_argument("--units", type=int, default=10, metavar="N", help="readable table: list at most N units per version (default 10)")
    h.set_defaults(func=run_history)

    r = sub.add_parser("refresh", parents=[common], help="apply committed units the maintained current_* tables lack (after a crash)")
    r.add_argument("--check", action="store_true", help="only report how many commits are pending (exit 1 when some are)")
    r.set_defaults(func=run_refresh)

    p.set_defaults(func=lambda args: _usage(p))
    return p


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _options(args) -> tuple[dict | None, int | None]:
    """(storage options, None) or (None, exit status) after printing why."""
    if not args.storage_options:
        return None, None
    try:
        opts = json.loads(args.storage_options)
    except ValueError as exc:
        _error(f"--storage-options is not valid JSON: {exc}")
        return None, EXIT_USAGE
    if not isinstance(opts, dict):
        _error("--storage-options must be a JSON object")
        return None, EXIT_USAGE
    return opts, None


def _call(fn, *a, **kw):
    """Run a maintenance function; (result, None) or (None, exit status) after printing why."""
    try:
        from biogliner.store import maintenance
    except ModuleNotFoundError as exc:
        _error(f"{exc}; the Delta tables need deltalake: pip install 'biogliner[pipeline]'")
        return None, EXIT_USAGE
    try:
        return getattr(maintenance, fn)(*a, **kw), None
    except maintenance.MaintenanceError as exc:  # not an output root, no such table, unreadable
        _error(str(exc))
        return None, EXIT_STORE
    except ValueError as exc:  # unknown table, bad limit/size, retention too short
        _error(str(exc))
        return None, EXIT_USAGE


def _json_lines(rows) -> None:
    for r in rows:
        sys.stdout.write(json.dumps(r, sort_keys=True, default=str) + "\n")


def _lines(header: list[str], rows: list[list]) -> list[str]:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _table(header: list[str], rows: list[list]) -> None:
    for line in _lines(header, rows):
        sys.stdout.write(line + "\n")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------------------------- optimize
def run_optimize(args) -> int:
    opts, rc = _options(args)
    if rc is not None:
        return rc
    target = None
    if args.target_size is not None:
        if args.target_size <= 0:
            _error("--target-size must be positive (MB)")
            return EXIT_USAGE
        target = int(args.target_size * 1024 * 1024)
    results, rc = _call("optimize", args.output, opts, tables=args.table, target_size=target)
    if rc is not None:
        return rc
    if args.format == "json":
        _json_lines(results)
    else:
        _table(
            ["table", "files", "removed", "added", "size", "version", "protocol", "seconds"],
            [
                [
                    r["table"],
                    f"{r['files_before']} -> {r['files_after']}",
                    r["files_removed"],
                    r["files_added"],
                    f"{_size(r['bytes_removed'])} -> {_size(r['bytes_added'])}" if r["files_removed"] else "",
                    f"{r['version_before']} -> {r['version_after']}" if r["version_after"] != r["version_before"] else f"{r['version_before']} (unchanged)",
                    "/".join(map(str, r["protocol"])),
                    r["seconds"],
                ]
                for r in results
            ],
        )
        for r in results:
            if r["error"]:
                print(f"{r['table']}: {r['error']}", file=sys.stderr)
    return EXIT_FAILED if any(r["error"] for r in results) else EXIT_OK


# --------------------------------------------------------------------------------------------- vacuum
def run_vacuum(args) -> int:
    opts, rc = _options(args)
    if rc is not None:
        return rc
    if args.show < 0:
        _error("--show must be >= 0")
        return EXIT_USAGE
    res, rc = _call(
        "vacuum",
        args.output,
        opts,
        tables=args.table,
        retention_hours=args.retention_hours,
        apply=args.apply,
        force_short_retention=args.force_short_retention,
        full=not args.lite,
    )
    if rc is not None:
        return rc
    if args.format == "json":
        _json_lines([{**t, "dry_run": res["dry_run"], "retention_hours": res["retention_hours"], "full": res["full"]} for t in res["tables"]])
        _json_lines([{"run_summaries": res["run_summaries"]}])
    else:
        what = "unreferenced" if res["full"] else "removed by the log"
        verb = "deleted" if not res["dry_run"] else "would delete"
        print(f"{'dry run, nothing deleted (--apply deletes)' if res['dry_run'] else 'applied'}: "
              f"files {what}, older than {res['retention_hours']} h")
        total = 0
        for t in res["tables"]:
            if t["error"]:
                print(f"{t['table']}: failed: {t['error']}")
                continue
            total += t["count"]
            print(f"{t['table']}: {verb} {t['count']} file(s)")
            for f in t["files"][: args.show]:
                print(f"  {f}")
            if t["count"] > args.show:
                print(f"  ... and {t['count'] - args.show} more (--show N, or --format json for all)")
        print(f"total: {verb} {total} file(s)")
        rs = res["run_summaries"]
        if rs["count"]:
            print(f"run summaries under {rs['dir']}/: {rs['count']} file(s), {_size(rs['bytes'])} "
                  f"(oldest {rs['oldest']}, newest {rs['newest']}); kept, vacuum never deletes them")
        else:
            print(f"run summaries under {rs['dir']}/: none")
    return EXIT_FAILED if any(t["error"] for t in res["tables"]) else EXIT_OK


# --------------------------------------------------------------------------------------------- history
def run_history(args) -> int:
    opts, rc = _options(args)
    if rc is not None:
        return rc
    if args.limit < 1 or args.units < 0:
        _error("--limit must be >= 1 and --units >= 0")
        return EXIT_USAGE
    rows, rc = _call("history", args.output, opts, table=args.table, limit=args.limit)
    if rc is not None:
        return rc
    if args.format == "json":
        _json_lines(rows)
        return EXIT_OK
    lines = _lines(
        ["version", "timestamp", "operation", "files", "units"],
        [
            [
                r["version"],
                r["timestamp"],
                r["operation"],
                f"+{r['files_added']} -{r['files_removed']}",
                len(r["units"]),
            ]
            for r in rows
        ],
    )
    sys.stdout.write(lines[0] + "\n")
    for r, line in zip(rows, lines[1:]):  # each version, its units indented below it
        sys.stdout.write(line + "\n")
        units = r["units"]
        for u in units[: args.units]:
            extra = " ".join(f"{k}={u[k]}" for k in ("kind", "status", "run_id") if u.get(k))
            sys.stdout.write(f"    {u['unit_id']} v{u['version']}" + (f"  {extra}" if extra else "") + "\n")
        if len(units) > args.units:
            sys.stdout.write(f"    ... and {len(units) - args.units} more (--units N, or --format json for all)\n")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- refresh
def run_refresh(args) -> int:
    """Bring current_documents/passages/entities up to the commits table (each annotate/nightly run
    does it at its end; this catches up after a run that died between its commits and that step)."""
    opts, status = _options(args)
    if status is not None:
        return status
    from biogliner.store.output import NoCommitsError, Output
    from biogliner.store.refresh import pending, refresh_current

    try:
        Output(args.output, opts).require_commits()
        waiting = pending(args.output, opts)
    except NoCommitsError as exc:
        _error(str(exc))
        return EXIT_STORE
    if args.check:
        if args.format == "json":
            _json_lines([{"pending": len(waiting), "units": [r.unit_id for r in waiting]}])
        else:
            sys.stdout.write(f"{len(waiting)} commit(s) not applied to the current tables\n")
        return 1 if waiting else 0
    result = refresh_current(args.output, opts) if waiting else {"units": 0, "batches": 0, "seconds": 0.0}
    if args.format == "json":
        _json_lines([{k: result.get(k) for k in ("units", "partitions", "batches", "seconds")}])
    else:
        sys.stdout.write(f"applied {result.get('units', 0)} commit(s) to the current tables in {result.get('seconds', 0.0):.1f} s\n")
    return 0
