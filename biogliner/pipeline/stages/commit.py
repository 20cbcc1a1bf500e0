"""Driver side: collect each unit's small commit messages and commit the unit to Delta, exactly once.

No entity row travels to the driver. A parse task writes its unit's parse tables and ends with an
``end`` row naming those files (and how many micro-batches the unit has); the model actors write
the entity files and send one ``written`` row per unit and call, naming its files and the
micro-batches they cover (:data:`biogliner.pipeline.stages.stream.WRITTEN`). Rows arrive in any order,
interleaved across units, possibly twice (Ray retries a lost task or actor call, which writes new
files): per unit the :class:`Committer` keeps which message first covered each micro-batch. A
message whose micro-batches are all covered already is dropped (its files are never committed:
``biogliner store vacuum`` removes them); one that covers some new and some old micro-batches
(rare: a parse task re-run after its first blocks were already bundled differently) is rewritten
on the driver to the rows of its new micro-batches. A unit is complete when its ``end`` row arrived
and every micro-batch is covered. Completed units are committed in one batch per intake step by
:meth:`biogliner.store.delta.DeltaStore.commit_units`: every data table first, the ``commits`` rows
last (one parse row, one row per label set), each through Delta app transactions, so a crash at
any point followed by a rerun leaves the tables as a clean run does.

Memory: per in-flight unit, its messages (file names, micro-batch ids, passage keys).
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from biogliner.pipeline.faults import Faults
from biogliner.pipeline.plan import WorkUnit
from biogliner.pipeline.stages import stream
from biogliner.store.delta import DataFile, Unit, write_data_file
from biogliner.store.output import ENTITIES, PARSE, Output, entities_unit_id, parse_unit_id, versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankInfo:
    label_set_id: str
    model: str  # fingerprint
    labels: tuple[str, ...]
    content_hash: str | None = None  # LabelSet.content_hash(), recorded with each commit


@dataclass
class _Message:
    mbs: list[int]
    keys: bytes  # pickled {mb: [(doc_id, position, passage_index)]}, read only for a rewrite
    files: dict[str, dict]  # label set -> DataFile fields
    per_label: dict[str, dict[str, int]]
    passages: int = 0


@dataclass
class _Pending:
    unit: WorkUnit
    first_seen: float
    owner: dict[int, int] = field(default_factory=dict)  # micro-batch -> index of the message that covers it
    messages: list[_Message] = field(default_factory=list)
    end: dict | None = None


@dataclass
class Committed:
    unit: WorkUnit
    status: str
    error: str | None
    counts: dict[str, Any]
    entities: dict[str, dict[str, int]]  # label set id -> label -> count
    members: list[dict[str, Any]] = field(default_factory=list)  # the input files, with their status

    @property
    def item(self) -> WorkUnit:  # what the run summary names
        return self.unit


class Committer:
    def __init__(
        self,
        output: Output,
        units: list[WorkUnit],
        banks: list[BankInfo],
        run_id: str,
        faults: Faults | None = None,
        scoring: dict | None = None,
        *,
        wait_s: float = 0.0,
        max_units: int = 256,
    ):
        """``wait_s``/``max_units``: completed units are committed together once the oldest has
        waited ``wait_s`` seconds or ``max_units`` are ready (the driver's cost is per Delta
        commit, not per unit); :meth:`flush` commits the rest. ``wait_s=0``: at once."""
        self.output = output
        self.wait_s = float(wait_s)
        self.max_units = int(max_units)
        self.ready: list[tuple[str, str]] = []
        self.ready_since: float | None = None
        self.scoring = dict(scoring or {})
        self.units = {u.key: u for u in units}
        self.banks = {b.label_set_id: b for b in banks}
        self.run_id = run_id
        self.faults = faults or Faults(None)
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.done: dict[tuple[str, str], Committed] = {}
        self.duplicates = 0  # messages of retried work dropped
        self.rewritten = 0  # messages rewritten on the driver (partly covered already)
        self.already = 0  # units a concurrent writer or an earlier run had committed
        self.versions = versions()
        self.commit_s = 0.0

    # -- intake -------------------------------------------------------------------------------
    def add(self, batch: pa.Table) -> list[Committed]:
        """Take one batch of the model stage's output; commits and returns the units it completed."""
        stream.require(batch, ["kind", "source", "input", "mbs", "keys", "info"], "commit")
        if batch.num_rows == 0:
            return []
        touched: set[tuple[str, str]] = set()
        kinds = batch.column("kind").to_pylist()
        sources = batch.column("source").to_pylist()
        inputs = batch.column("input").to_pylist()
        infos = batch.column("info").to_pylist()
        mbs = batch.column("mbs").to_pylist()
        for r, kind in enumerate(kinds):
            key = (sources[r], inputs[r])
            if key in self.done or key in self.ready:
                self.duplicates += 1
                continue
            p = self._pending(key)
            touched.add(key)
            if kind == stream.END:
                if p.end is None:
                    p.end = json.loads(infos[r])
                else:
                    self.duplicates += 1
                continue
            if kind != stream.WRITTEN_KIND:
                raise ValueError(f"commit: unexpected row kind {kind!r} for {key[0]}/{key[1]}")
            self._take(p, mbs[r], batch.column("keys")[r].as_py(), json.loads(infos[r]))
        for key in sorted(touched):
            p = self.pending.get(key)
            if p is not None and p.end is not None and len(p.owner) >= p.end.get("micro_batches", 0) and key not in self.ready:
                self.ready.append(key)
                if self.ready_since is None:
                    self.ready_since = time.perf_counter()
        if self.ready and (len(self.ready) >= self.max_units or time.perf_counter() - self.ready_since >= self.wait_s):
            return self.flush()
        return []

    def flush(self) -> list[Committed]:
        """Commit every completed unit not committed yet."""
        ready, self.ready, self.ready_since = self.ready, [], None
        return self._commit(ready) if ready else []

    def _pending(self, key: tuple[str, str]) -> _Pending:
        p = self.pending.get(key)
        if p is None:
            if key not in self.units:
                raise KeyError(f"commit: a row for {key[0]}/{key[1]}, which is not in this run's plan")
            p = self.pending[key] = _Pending(self.units[key], time.perf_counter())
        return p

    def _take(self, p: _Pending, mbs: list[int], keys: bytes, info: dict) -> None:
        new = [m for m in mbs if m not in p.owner]
        if not new:
            self.duplicates += 1
            return
        msg = _Message(mbs, keys, info["files"], info["per_label"], info.get("passages", 0))
        if len(new) < len(mbs):
            msg = self._rewrite(p, msg, set(new))
        idx = len(p.messages)
        p.messages.append(msg)
        for m in new:
            p.owner[m] = idx

    def _rewrite(self, p: _Pending, msg: _Message, keep: set[int]) -> _Message:
        """A message covering some micro-batches another one covers already: keep the rows of
        ``keep`` only, in new files written here (a retry after a re-bundling; rare)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from biogliner import io as bio

        self.rewritten += 1
        by_mb = pickle.loads(msg.keys)
        wanted = {k for m in keep for k in by_mb.get(m, [])}
        files, per_label = {}, {}
        for ls, f in msg.files.items():
            df = DataFile(**f)
            with bio.open_binary(bio.join(self.output.root_url, "entities", df.path), self.output.storage_options) as fh:
                t = pq.read_table(fh)
            mask = [(d, pos, pi) in wanted for d, pos, pi in zip(t.column("doc_id").to_pylist(), t.column("position").to_pylist(), t.column("passage_index").to_pylist())]
            t = t.filter(pa.array(mask, pa.bool_()))
            per_label[ls] = dict(Counter(pc.cast(t.column("label"), pa.string()).to_pylist()))
            if t.num_rows:
                new = write_data_file(self.output.root_url, "entities", t.select(list(t.schema.names)), dict(df.partition_values), self.output.storage_options)
                files[ls] = asdict(new)
        for ls in msg.per_label:
            per_label.setdefault(ls, {})
        log.info("%s/%s: a retried call covered %d micro-batch(es) twice: rewrote its files", p.unit.source, p.unit.input, len(msg.mbs) - len(keep))
        return _Message(sorted(keep), msg.keys, files, per_label, len(wanted))

    # -- commit -------------------------------------------------------------------------------
    def _commit(self, keys: list[tuple[str, str]]) -> list[Committed]:
        t0 = time.perf_counter()
        units: list[Unit] = []
        results: list[Committed] = []
        ids_of: dict[tuple[str, str], list[str]] = {}  # unit -> the Delta unit ids committed for it
        for key in keys:
            p = self.pending[key]
            u, end = p.unit, p.end
            n_before = len(units)
            common = {"source": u.source, "input": u.input, "run_id": self.run_id, "status": end["status"], "error": end["error"], "software": self.versions}
            if u.parse_version is not None:
                units.append(
                    Unit(
                        parse_unit_id(u.source, u.input),
                        u.parse_version,
                        [DataFile(**f) for f in end["files"]],
                        {**common, "kind": PARSE, "inputs": end["members"], "counts": end["counts"], "timings": end["timings"]},
                    )
                )
            per_set: dict[str, dict[str, int]] = {}
            for ls in u.label_sets:
                bank = self.banks[ls]
                files = [DataFile(**m.files[ls]) for m in p.messages if ls in m.files]
                acc: Counter = Counter()
                for m in p.messages:
                    acc.update(m.per_label.get(ls, {}))
                per_set[ls] = {label: acc.get(label, 0) for label in bank.labels} | {k: v for k, v in acc.items() if k not in bank.labels}
                units.append(
                    Unit(
                        entities_unit_id(u.source, u.input, ls),
                        u.entity_version(ls),
                        files,
                        {
                            **common,
                            "kind": ENTITIES,
                            "label_set": ls,
                            "model": bank.model,
                            "label_set_hash": bank.content_hash,
                            "scoring": self.scoring,
                            "counts": {"entities": sum(acc.values()), "passages": sum(m.passages for m in p.messages), "per_label": per_set[ls]},
                            "timings": {"ner_wall_s": round(t0 - p.first_seen, 3)},
                        },
                    )
                )
            ids_of[key] = [x.unit_id for x in units[n_before:]]
            results.append(Committed(u, end["status"], end["error"], end["counts"], per_set, end.get("members", [])))
        self.faults.hit("driver.before_commit")
        done = self.output.delta.commit_units(units, fault=self.faults.commit_hook if self.faults else None)
        # a unit none of whose rows were committed now was committed before (an earlier run that
        # crashed after its commit, or a concurrent writer): counted, not an error
        for key in keys:
            ids = ids_of[key]
            if ids and not any(done.get(i) for i in ids):
                self.already += 1
            del self.pending[key]
        for c in results:
            self.done[c.unit.key] = c
            log.info("committed %s/%s (%s): %s documents", c.unit.source, c.unit.input, c.status, c.counts.get("documents", 0))
        self.commit_s += time.perf_counter() - t0
        self.faults.hit("driver.after_commit")
        return results

    def incomplete(self) -> list[str]:
        """Units of the plan not committed (after the stream ended: a bug or a lost row)."""
        return sorted(f"{s}/{i}" for (s, i) in self.units if (s, i) not in self.done)
