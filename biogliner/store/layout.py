"""Where everything lives under an output root (a local path or an object-store URL).

```
<root>/<table>/_delta_log/...                                  each table's Delta log (biogliner.store.delta)
<root>/<table>/source=<source>/input=<unit>/part-<uuid>.parquet data files (documents, passages, entities,
                                                                deletions, errors; commits is unpartitioned)
<root>/current_<table>/...                                     the maintained current state (biogliner.store.current)
<root>/_runs/<run_id>.json                                     run summaries
<root>/_runs/<run_id>/banks/                                   the label banks a run's model actors loaded
<root>/_locks/<name>.json                                      locks
```
Data files get fresh names; only the files a Delta log names are part of a table.
"""

from __future__ import annotations

import re

RUNS_DIR = "_runs"
LOCKS_DIR = "_locks"
PARSE_TABLES = ("documents", "passages", "deletions", "errors")

_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def safe_name(value: str) -> str:
    """A path segment from ``value``: anything outside ``[A-Za-z0-9._@+-]`` becomes ``_``."""
    if not value:
        raise ValueError("empty path segment")
    return _SAFE.sub("_", value)


def run_relpath(run_id: str) -> str:
    return f"{RUNS_DIR}/{safe_name(run_id)}.json"


def lock_relpath(name: str) -> str:
    return f"{LOCKS_DIR}/{safe_name(name)}.json"
