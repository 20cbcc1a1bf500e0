"""Fault injection for the exactly-once tests: ``os._exit`` at a named point.

Spec (``--fault`` or ``$BIOGLINER_FAULT``): ``point=N`` or ``point=N,point=M``. Points:

- ``driver.after_commit``: the driver process dies right after its N-th commit (of a batch of
  completed units);
- ``driver.before_commit``: the driver dies when the N-th batch of units is complete, before it
  commits anything (files on storage, not visible);
- ``commit.after_<table>`` (documents, passages, entities, deletions, errors) and
  ``commit.before_commits``: the driver dies inside its N-th commit, after that Delta table's
  commit (or before the ``commits`` table's): the commit boundaries of
  :meth:`biogliner.store.delta.DeltaStore.commit_units`;
- ``parse.after_write``: a parse task's worker dies after writing the N-th input's parse tables
  (a lost worker: Ray retries the task);
- ``ner.call``: a model actor's process dies at its N-th call (a dead actor: Ray restarts it and
  retries the batch);
- ``ner.after_write``: a model actor dies after writing the entity files of its N-th call, before
  returning (the retried call writes new files; the first ones are never committed).

Worker-side points fire once per run: a marker file in ``fault_dir`` (a local directory shared
by the processes of a local Ray) records that the fault already happened, so the restarted actor
or retried task goes on. Never set in production.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

from biogliner.schema import TABLES as _TABLES

COMMIT_POINTS = tuple(f"commit.after_{t}" for t in _TABLES) + ("commit.before_commits",)
POINTS = ("driver.after_commit", "driver.before_commit", "parse.after_write", "ner.call", "ner.after_write", *COMMIT_POINTS)
EXIT_CODE = 137  # what a SIGKILL looks like to a parent


def parse_fault_spec(spec: str | None) -> dict[str, int]:
    from biogliner.pipeline.config import ConfigError

    out: dict[str, int] = {}
    if not spec:
        return out
    for part in spec.split(","):
        point, sep, n = part.strip().partition("=")
        if not sep or point not in POINTS or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"fault: expected point=N with point in {', '.join(POINTS)} and N >= 1, got {part!r}")
        out[point] = int(n)
    return out


class Faults:
    """Counts hits of each point and exits the process when a configured count is reached."""

    def __init__(self, spec: str | None, fault_dir: str | None = None):
        self.targets = parse_fault_spec(spec)
        self.fault_dir = fault_dir
        self.hits: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.targets)

    def hit(self, point: str, *, once_key: str | None = None) -> None:
        """Count a hit of ``point``; die at the configured count. ``once_key``: fire at most once
        per run across processes (needs ``fault_dir``)."""
        target = self.targets.get(point)
        if target is None:
            return
        self.hits[point] = self.hits.get(point, 0) + 1
        if self.hits[point] != target:
            return
        if once_key is not None and self.fault_dir:
            marker = Path(self.fault_dir) / f"{point}.{once_key}.fired"
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
        log.warning("fault injection: exiting at %s (hit %d)", point, target)
        os._exit(EXIT_CODE)

    def commit_hook(self, point: str) -> None:
        """:meth:`DeltaStore.commit_units`'s ``fault`` callback (``after:<table>``, ``before:commits``)."""
        self.hit("commit." + point.replace(":", "_"))
