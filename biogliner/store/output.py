"""An output root as the pipeline, the plan and the readers see it: Delta tables and what is committed.

Every output table is a Delta table under the root (:mod:`biogliner.store.delta`); the ``commits``
table holds one row per committed *unit* and label set, written last:

- a **parse** row (``kind = 'parse'``, ``unit_id = '<source>/<input>'``): the unit's documents,
  passages, deletions and errors files, the input files it was made from (``inputs``, JSON:
  name, URL, size, ETag, md5, modification time, status) and its counts;
- an **entities** row per label set (``kind = 'entities'``, ``unit_id = '<source>/<input>#<label
  set>'``): the unit's entity files under that label set, the model fingerprint, the label set's
  content hash and what else changes scores (``scoring``).

``input`` is the partition the unit's files live in: the input file's name for PubMed (one file,
one unit), a unit name for PMC (many articles per unit, :mod:`biogliner.pipeline.plan`).
A unit is re-committed with a higher ``version`` when its input changed (a re-published PubMed
file) or, for a label set, on ``--reannotate``; the highest version is the current one, the
older rows stay as history.

Readers see a unit's rows only when its ``commits`` row is there (:class:`CommitState`): data
files committed by a run that crashed before its ``commits`` row are filtered out by run id, and a
rerun adds nothing twice (app transactions, :class:`biogliner.store.delta.DeltaStore`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from biogliner import io
from biogliner.store import layout
from biogliner.store.delta import COMMITS, COMMITS_TABLE, DeltaStore

PARSE = "parse"
ENTITIES = "entities"


class StoreError(RuntimeError):
    """A problem with the output store (not an output root, unreadable commits...)."""


class NoCommitsError(StoreError):
    """The URL is not an output root with committed units."""


def parse_unit_id(source: str, input_name: str) -> str:
    return f"{source}/{input_name}"


def entities_unit_id(source: str, input_name: str, label_set: str) -> str:
    return f"{source}/{input_name}#{label_set}"


@dataclass(frozen=True)
class CommitRecord:
    """One row of the ``commits`` table."""

    unit_id: str
    version: int
    kind: str
    source: str
    input: str
    status: str
    run_id: str
    error: str | None = None
    model: str | None = None
    label_set: str | None = None
    label_set_hash: str | None = None
    inputs: tuple[dict[str, Any], ...] = ()
    counts: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)
    committed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "CommitRecord":
        def js(name: str, default):
            v = row.get(name)
            return default if v is None else json.loads(v)

        return cls(
            unit_id=row["unit_id"],
            version=int(row["version"]),
            kind=row.get("kind") or "",
            source=row.get("source") or "",
            input=row.get("input") or "",
            status=row.get("status") or "committed",
            run_id=row.get("run_id") or "",
            error=row.get("error"),
            model=row.get("model"),
            label_set=row.get("label_set"),
            label_set_hash=row.get("label_set_hash"),
            inputs=tuple(js("inputs", [])),
            counts=js("counts", {}),
            scoring=js("scoring", {}),
            committed_at=row.get("committed_at"),
        )


@dataclass(frozen=True)
class CommitState:
    """What the ``commits`` table says is committed (latest, or as of a version/time)."""

    records: tuple[CommitRecord, ...]  # every row, in commit order
    version: int | None = None  # the commits table's version this was read at

    @property
    def parse(self) -> dict[tuple[str, str], CommitRecord]:
        """(source, input) -> the unit's current parse commit (highest version)."""
        return _latest(r for r in self.records if r.kind == PARSE)

    @property
    def label_sets(self) -> dict[tuple[str, str], dict[str, CommitRecord]]:
        """(source, input) -> label set -> its current entities commit (highest version)."""
        out: dict[tuple[str, str], dict[str, CommitRecord]] = {}
        for r in _latest(r for r in self.records if r.kind == ENTITIES).values():
            out.setdefault((r.source, r.input), {})[r.label_set] = r
        return out

    def committed_runs(self) -> list[tuple[str, str, str]]:
        """(source, input, run_id) of every unit's current parse commit: the parse rows readers see."""
        return sorted({(r.source, r.input, r.run_id) for r in self.parse.values()})

    def current_label_sets(self) -> list[tuple[str, str, str, str]]:
        """(source, input, label_set, run_id) of each current entities commit."""
        return sorted((s, i, ls, r.run_id) for (s, i), sets in self.label_sets.items() for ls, r in sets.items())

    def entity_history(self) -> list[tuple[str, str, str, str]]:
        """(source, input, label_set, run_id) of every entities commit, replaced ones included."""
        return sorted({(r.source, r.input, r.label_set, r.run_id) for r in self.records if r.kind == ENTITIES})

    def members(self) -> dict[tuple[str, str], tuple[CommitRecord, dict[str, Any]]]:
        """(source, input file name) -> (the current parse commit of the unit holding it, its
        record in ``inputs``). For PubMed the input file is the unit; a PMC article is one
        member of a unit. A file in two units (re-published): the later commit wins."""
        out: dict[tuple[str, str], tuple[CommitRecord, dict[str, Any]]] = {}
        for r in self.parse.values():
            for m in r.inputs:
                key = (r.source, m["input"])
                old = out.get(key)
                if old is None or _commit_order(r) >= _commit_order(old[0]):
                    out[key] = (r, m)
        return out


def _commit_order(r: CommitRecord) -> tuple:
    return (r.committed_at or datetime.min, r.unit_id)


def _latest(records) -> dict:
    out: dict = {}
    for r in records:
        key = (r.source, r.input) if r.kind == PARSE else (r.source, r.input, r.label_set)
        if key not in out or r.version >= out[key].version:
            out[key] = r
    return out


class Output:
    """An output root: its Delta tables (through :class:`DeltaStore`), run summaries and banks."""

    def __init__(self, root: str, storage_options: io.StorageOptions | None = None):
        self.root_url = root.rstrip("/")
        self.storage_options = io.resolve_storage_options(root, storage_options)
        self.local = io.protocol_of(root) == "file"
        self.delta = DeltaStore(self.root_url, self.storage_options)

    def __repr__(self) -> str:  # never shows storage options
        return f"Output({self.root_url!r})"

    # -- paths ------------------------------------------------------------------------------
    def url(self, relpath: str) -> str:
        return io.join(self.root_url, relpath)

    # -- commits ----------------------------------------------------------------------------
    def commits_table(self, as_of: int | datetime | str | None = None) -> pa.Table:
        """Every row of the ``commits`` table (empty when nothing is committed yet)."""
        from deltalake.exceptions import TableNotFoundError

        try:
            dt = self.delta._snapshot(COMMITS_TABLE, as_of)
        except TableNotFoundError:
            if as_of is None:
                return COMMITS.empty_table()
            raise NoCommitsError(f"{self.root_url}: no commits table, so nothing to read as of {as_of}") from None
        t = dt.to_pyarrow_table()
        return t.sort_by([("committed_at", "ascending"), ("unit_id", "ascending")]) if t.num_rows else t

    def state(self, as_of: int | datetime | str | None = None) -> CommitState:
        t = self.commits_table(as_of)
        version = self.delta.version(COMMITS_TABLE) if as_of is None else None
        return CommitState(tuple(CommitRecord.from_row(r) for r in t.to_pylist()), version)

    def require_commits(self, as_of=None) -> CommitState:
        """The commit state; raises :class:`NoCommitsError` when the root holds no commit."""
        state = self.state(as_of)
        if not state.records:
            fs, path = io.filesystem(self.root_url, self.storage_options)
            try:
                exists = fs.exists(path)
            except OSError:
                exists = False
            what = "has no committed units" if exists else "does not exist"
            raise NoCommitsError(
                f"{self.root_url} {what}: no rows in its {COMMITS_TABLE}/ Delta table; expected the output root of "
                "`biogliner annotate` / `biogliner nightly` with at least one committed input"
            )
        return state

    def files(self, table: str, as_of: int | datetime | str | None = None) -> list[str]:
        """URIs (local: paths) of the committed files of ``table``, from its Delta log."""
        uris = self.delta.file_uris(table, as_of)
        if self.local:
            return [u[len("file://"):] if u.startswith("file://") else u for u in uris]
        return uris

    def commit_tables(
        self,
        source: str,
        input_name: str,
        run_id: str,
        parse: dict[str, pa.Table] | None = None,
        entities: dict[str, pa.Table] | None = None,
        *,
        parse_version: int = 1,
        entity_versions: dict[str, int] | None = None,
        model: str | None = None,
        label_set_hashes: dict[str, str] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        status: str = "committed",
        counts: dict[str, Any] | None = None,
    ) -> dict[str, bool]:
        """Write and commit one unit's tables from this process (tests, small tools; the pipeline's
        workers write and its driver only commits). ``parse``: table -> rows (file columns);
        ``entities``: label set -> rows. Returns ``{unit_id: committed now}``."""
        from biogliner.store.delta import Unit, write_data_file

        pv = {"source": layout.safe_name(source), "input": layout.safe_name(input_name)}
        units = []
        common = {"source": pv["source"], "input": pv["input"], "run_id": run_id, "status": status}
        if parse is not None:
            files = [write_data_file(self.root_url, t, rows, pv, self.storage_options) for t, rows in parse.items() if rows.num_rows]
            row = {**common, "kind": PARSE, "inputs": inputs or [{"input": input_name, "status": status}], "counts": counts or {}}
            units.append(Unit(parse_unit_id(pv["source"], pv["input"]), parse_version, files, row))
        for ls, rows in (entities or {}).items():
            files = [write_data_file(self.root_url, "entities", rows, pv, self.storage_options)] if rows.num_rows else []
            row = {**common, "kind": ENTITIES, "label_set": ls, "model": model, "label_set_hash": (label_set_hashes or {}).get(ls)}
            units.append(Unit(entities_unit_id(pv["source"], pv["input"], ls), (entity_versions or {}).get(ls, 1), files, row))
        return self.delta.commit_units(units)

    # -- crashed attempts -----------------------------------------------------------------------
    def held_versions(self, unit_ids: list[str]) -> dict[str, int]:
        """Per unit id, the highest app-transaction version any DATA table holds. Higher than the
        unit's version in ``commits`` means an attempt that committed some data tables and
        crashed before its ``commits`` row: its rows are invisible to readers (their run is not
        named), and the next attempt must commit at a higher version (the tables that hold the
        crashed version would otherwise skip its files)."""
        from biogliner.store.delta import APP_ID_PREFIX, DATA_TABLES

        out: dict[str, int] = {}
        if not unit_ids:
            return out
        for table in DATA_TABLES:
            dt = self.delta._table(table, create=False)
            if dt is None:
                continue
            for uid in unit_ids:
                v = dt.transaction_version(APP_ID_PREFIX + uid)
                if v is not None and v > out.get(uid, -1):
                    out[uid] = v
        return out

    def drop_uncommitted(self, source: str, input_name: str, keep_runs: set[str], *, label_set: str | None = None) -> int:
        """Remove from the data tables the rows of ``source/input_name`` (entities: of
        ``label_set`` only; parse tables otherwise) whose run is not in ``keep_runs``: what a
        crashed attempt committed without its ``commits`` row. Whole files go (a file holds one
        run), so nothing is rewritten. Returns the rows removed."""
        from biogliner.store.delta import DATA_TABLES

        def lit(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        tables = ["entities"] if label_set is not None else [t for t in DATA_TABLES if t != "entities"]
        removed = 0
        for table in tables:
            dt = self.delta._table(table, create=False)
            if dt is None:
                continue
            pred = f"source = {lit(source)} AND input = {lit(input_name)}"
            if label_set is not None:
                pred += f" AND label_set = {lit(label_set)}"
            if keep_runs:
                pred += " AND run_id NOT IN (" + ", ".join(lit(r) for r in sorted(keep_runs)) + ")"
            metrics = dt.delete(pred)
            removed += int(metrics.get("num_deleted_rows", 0) or 0)
        return removed

    # -- side files ---------------------------------------------------------------------------
    def put_json(self, relpath: str, obj: Any) -> str:
        """Write a JSON document (run summaries...) atomically; returns its URL."""
        fs, root = io.filesystem(self.root_url, self.storage_options)
        path = f"{root.rstrip('/')}/{relpath}"
        data = json.dumps(obj, indent=1, sort_keys=True, default=str).encode()
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if self.local:  # write aside, then rename over
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        else:
            fs.pipe_file(path, data)
        return self.url(relpath)

    def run_url(self, run_id: str) -> str:
        return self.url(layout.run_relpath(run_id))


def versions() -> dict[str, str]:
    """Versions of what produced the outputs, recorded with each commit."""
    from importlib import metadata

    from biogliner.schema import SCHEMA_VERSION

    out = {"schema": SCHEMA_VERSION}
    for dist in ("biogliner", "ray", "torch", "transformers", "pyarrow", "deltalake"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
