"""Run a query over the views and write its result: a readable table, CSV, JSON lines or Parquet.

Only the readable table shortens anything (long cells, many rows), and it says so in a note
under the table; csv/json/parquet always carry every row and every full value.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from dataclasses import dataclass
from typing import IO

import pyarrow as pa

FORMATS = ("table", "csv", "json", "parquet")


class QueryError(RuntimeError):
    """The query failed (DuckDB's message, unchanged)."""


def run_query(con, query: str) -> pa.Table | None:
    """Run ``query`` (one or more statements; the last one's result is returned, None when it
    returns no rows, e.g. ``CREATE``)."""
    import duckdb

    try:
        rel = con.sql(query)
        if rel is None:
            return None
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc


# --------------------------------------------------------------------------- readable table


@dataclass(frozen=True)
class TableStyle:
    max_width: int = 60  # per cell, in characters; longer values are shortened with "…"
    max_rows: int = 1000  # rows shown; the rest are counted in the note


def _cell(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=_json_default, ensure_ascii=False)
    s = str(v)
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def format_table(table: pa.Table, style: TableStyle = TableStyle()) -> str:
    """Aligned columns with a header; long cells and extra rows are cut with a note."""
    names = table.column_names
    shown = table.slice(0, style.max_rows)
    cols = [[_cell(v) for v in shown.column(i).to_pylist()] for i in range(len(names))]
    truncated = 0
    for c in cols:
        for j, s in enumerate(c):
            if len(s) > style.max_width:
                c[j] = s[: max(style.max_width - 1, 1)] + "…"
                truncated += 1
    widths = [max([len(n)] + [len(s) for s in c]) for n, c in zip(names, cols)]
    right = [_is_numeric(table.schema.field(i).type) for i in range(len(names))]

    def line(values: list[str]) -> str:
        return " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    out = [line(list(names)), "-+-".join("-" * w for w in widths)]
    out.extend(line([c[j] for c in cols]) for j in range(shown.num_rows))
    n = table.num_rows
    out.append(f"({n} row{'s' if n != 1 else ''})")
    if n > shown.num_rows:
        out.append(f"note: showing the first {shown.num_rows} of {n} rows; use --max-rows, or --format csv|json|parquet for all rows")
    if truncated:
        out.append(
            f"note: {truncated} cell(s) longer than {style.max_width} characters are shortened (…) in this display only; "
            "use --max-width, or --format csv|json|parquet for full values"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- machine formats


def _json_default(v):
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _json_value(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else str(v)
    return v


def write_json_lines(table: pa.Table, out: IO[bytes]) -> None:
    """One JSON object per row, full values, NULL as null."""
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            line = json.dumps({k: _json_value(v) for k, v in row.items()}, default=_json_default, ensure_ascii=False)
            out.write(line.encode() + b"\n")


def _flatten_nested(table: pa.Table) -> pa.Table:
    """CSV has no lists or structs: such columns are written as JSON text (full values)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_nested(f.type):
            texts = [None if v is None else json.dumps(v, default=_json_default, ensure_ascii=False)
                     for v in table.column(i).to_pylist()]
            table = table.set_column(i, pa.field(f.name, pa.string()), pa.array(texts, pa.string()))
    return table


def write_result(table: pa.Table, fmt: str, out: IO[bytes], style: TableStyle = TableStyle()) -> None:
    """Write ``table`` to the binary stream ``out`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        out.write(format_table(table, style).encode())
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(_flatten_nested(table), out)
    elif fmt == "json":
        write_json_lines(table, out)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out, compression="zstd")
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
