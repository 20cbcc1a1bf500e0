"""``biogliner sql``: query an output root with DuckDB, or print its view definitions.

Views (see docs/sql.md): documents, passages, entities, deletions, errors (every committed
occurrence: the history), current_documents, current_passages, current_entities (the latest
version of each citation/article, deletions applied), commits (the commits table: one row per
committed unit and label set, replaced versions included).

The output root's tables are Delta tables; only rows of units whose commits row is there are
visible. --as-of reads an earlier state: an integer is a version of the commits table
(<output>/commits/), anything else an ISO-8601 time (e.g. 2026-12-05T23:00:00Z; no zone: UTC).
As of version V, the commits table is read at V and every data table as of the time V was
committed (data tables are committed before the commits row, so they hold at least what V names;
the committed-runs filter hides anything later). As of a time, every table is read as of it.
The Delta log must still hold those versions (no vacuum/log cleanup past them). With --views,
--as-of applies to --dialect duckdb only (a snapshot); the trino/athena/spark scripts read
the Delta tables' latest versions and compute what is committed from the commits table.

Exit status: 0 success, 1 the query failed (DuckDB's message), 2 usage error (a malformed
--as-of included), 3 the output root has no committed units (as of --as-of), or its commits
table cannot be read (at that version or time).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger(__name__)

EXIT_OK, EXIT_QUERY, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sql",
        help="run SQL over an output root's views (DuckDB), or print the view definitions",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("query", nargs="?", help="the SQL query; '-' reads it from stdin")
    p.add_argument("--output", "-o", required=True, metavar="URL", help="output root (local path or s3://...)")
    p.add_argument("--file", "-f", metavar="FILE", help="read the query from FILE")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table",
                   help="table (readable, default), csv, json (one object per line) or parquet")
    p.add_argument("--to", metavar="FILE", help="write the result to FILE (any fsspec URL) instead of stdout")
    p.add_argument("--views", action="store_true", help="print the view definitions as SQL and exit")
    p.add_argument("--dialect", choices=("duckdb", "trino", "athena", "spark"), default="duckdb",
                   help="SQL dialect of --views (default duckdb)")
    p.add_argument("--max-width", type=int, default=60, metavar="N",
                   help="readable table only: shorten cells longer than N characters (default 60)")
    p.add_argument("--max-rows", type=int, default=1000, metavar="N",
                   help="readable table only: show at most N rows (default 1000)")
    p.add_argument("--as-of", metavar="VERSION|TIMESTAMP",
                   help="read the state as of a commits-table version (integer) or an ISO-8601 time "
                        "(e.g. 2026-12-05T23:00:00Z); see below")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec storage options for s3:// etc., as JSON")
    p.set_defaults(func=run)
    return p


def _query_text(args) -> str | None:
    if args.file:
        from biogliner import io

        with io.open_binary(args.file) as f:
            return f.read().decode()
    if args.query == "-":
        return sys.stdin.read()
    return args.query


def run(args: argparse.Namespace) -> int:
    from biogliner.store.output import Output, StoreError
    from biogliner.store.sql import QueryError, TableStyle, run_query, write_result
    from biogliner.store.views import parse_as_of, register, snapshot, views_sql

    try:
        storage_options = json.loads(args.storage_options) if args.storage_options else None
    except ValueError as exc:
        print(f"error: --storage-options is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.max_width < 2 or args.max_rows < 0:
        print("error: --max-width must be >= 2 and --max-rows >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        as_of = parse_as_of(args.as_of)
    except ValueError as exc:
        print(f"error: --as-of: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if as_of is not None and args.views and args.dialect != "duckdb":
        print(f"error: --as-of applies to queries and --dialect duckdb; the {args.dialect} views read the "
              "Delta tables' latest versions", file=sys.stderr)
        return EXIT_USAGE
    query = None
    if not args.views:
        query = _query_text(args)
        if not query or not query.strip():
            print("error: no query given (a QUERY argument, '-' for stdin, --file FILE, or --views)", file=sys.stderr)
            return EXIT_USAGE
        if args.format == "parquet" and not args.to and sys.stdout.isatty():
            print("error: refusing to write Parquet to a terminal; use --to FILE or a pipe", file=sys.stderr)
            return EXIT_USAGE
    from deltalake.exceptions import DeltaError

    try:
        output = Output(args.output, storage_options)
        snap = snapshot(output, as_of)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (DeltaError, OSError) as exc:  # an unreadable Delta log or store
        print(f"error: cannot read the output root {args.output}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_STORE
    if args.views:
        _emit(views_sql(snap, args.dialect).encode(), args, storage_options)
        return EXIT_OK

    import duckdb

    con = duckdb.connect()
    register(con, output, snap)
    try:
        result = run_query(con, query)
    except QueryError as exc:
        print(f"error: query failed: {exc}", file=sys.stderr)
        return EXIT_QUERY
    if result is None:
        print("(statement returned no rows)", file=sys.stderr)
        return EXIT_OK
    style = TableStyle(max_width=args.max_width, max_rows=args.max_rows)
    if args.to:
        from biogliner import io

        fs, path = io.filesystem(args.to, storage_options)
        with fs.open(path, "wb") as out:
            write_result(result, args.format, out, style)
        print(f"wrote {result.num_rows} rows ({args.format}) to {args.to}", file=sys.stderr)
    else:
        write_result(result, args.format, sys.stdout.buffer, style)
        sys.stdout.buffer.flush()
    return EXIT_OK


def _emit(data: bytes, args, storage_options) -> None:
    if args.to:
        from biogliner import io

        fs, path = io.filesystem(args.to, storage_options)
        with fs.open(path, "wb") as out:
            out.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
