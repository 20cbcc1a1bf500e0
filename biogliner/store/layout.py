"""Where everything lives under an output root (a local path or an object-store URL).

```
<root>/<table>/source=<source>/input=<input>/<stem>.parquet   parse tables: stem = <run_id>
                                                               entities:     stem = <label-set slug>-<run_id>
<root>/_manifest/<source>/<input>.json                         one commit record per input file (written last)
<root>/_runs/<run_id>.json                                     run summaries
<root>/_locks/<name>.json                                      locks
```
Names are deterministic from (input, run id, label set): a retried write replaces its own file,
and files of a crashed run are never read (readers only read what a manifest entry names).
"""

from __future__ import annotations

import re

from biogliner.schema import TABLES

MANIFEST_DIR = "_manifest"
RUNS_DIR = "_runs"
LOCKS_DIR = "_locks"
PARSE_TABLES = ("documents", "passages", "deletions", "errors")
ENTITY_TABLE = "entities"
TABLE_NAMES = tuple(TABLES)

_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_name(value: str) -> str:
    """A path segment from ``value``: anything outside ``[A-Za-z0-9._@+-]`` becomes ``_``."""
    if not value:
        raise ValueError("empty path segment")
    return _SAFE.sub("_", value)


def table_relpath(table: str, source: str, input_name: str, stem: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLE_NAMES)}")
    return f"{table}/source={safe_name(source)}/input={safe_name(input_name)}/{safe_name(stem)}.parquet"


def entities_stem(label_set_id: str, run_id: str) -> str:
    return f"{safe_name(label_set_id)}-{safe_name(run_id)}"


def manifest_relpath(source: str, input_name: str) -> str:
    return f"{MANIFEST_DIR}/{safe_name(source)}/{safe_name(input_name)}.json"


def run_relpath(run_id: str) -> str:
    return f"{RUNS_DIR}/{safe_name(run_id)}.json"


def lock_relpath(name: str) -> str:
    return f"{LOCKS_DIR}/{safe_name(name)}.json"
