"""Driver side: gather each input's entities from the model stage's output, write, commit.

Rows arrive in any order, interleaved across inputs, possibly twice (a retried task re-emits
rows). Per input the :class:`Committer` keeps the set of passage keys seen (duplicates are
dropped: the model is deterministic, so a re-emitted row is identical) and the entity rows so
far. The input is complete when its ``end`` row arrived (which says how many passages to expect
and which parse files were written and closed) and every expected passage was seen. Then it
writes one entities file per requested label set, and commits the manifest entry LAST: the
single PUT that makes the input's outputs visible.

Memory: per in-flight input, its passage keys and its entity rows (see docs/pipeline.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from biogliner.pipeline import stream
from biogliner.pipeline.faults import Faults
from biogliner.pipeline.plan import InputFile
from biogliner.schema import ENTITIES
from biogliner.store import layout
from biogliner.store.manifest import LabelSetCommit, ManifestEntry, ParseCommit, Store, versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankInfo:
    label_set_id: str
    model: str  # fingerprint
    labels: tuple[str, ...]
    content_hash: str | None = None  # LabelSet.content_hash(), recorded in the manifest


@dataclass
class _Pending:
    item: InputFile
    first_seen: float
    seen: set = field(default_factory=set)
    parts: list[pa.Table] = field(default_factory=list)
    end: dict | None = None


@dataclass
class Committed:
    item: InputFile
    status: str
    error: str | None
    counts: dict[str, Any]
    entities: dict[str, dict[str, int]]  # label set id -> label -> count


class Committer:
    def __init__(
        self, store: Store, items: list[InputFile], banks: list[BankInfo], run_id: str, faults: Faults | None = None, scoring: dict | None = None
    ):
        self.store = store
        self.scoring = dict(scoring or {})  # recorded with each label set's commit
        self.items = {(i.source, i.input): i for i in items}
        self.banks = banks
        self.run_id = run_id
        self.faults = faults or Faults(None)
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.done: dict[tuple[str, str], Committed] = {}
        self.duplicates = 0
        self.versions = versions()

    # -- intake -------------------------------------------------------------------------------
    def add(self, batch: pa.Table) -> list[Committed]:
        """Take one batch of the model stage's output; returns the inputs it completed."""
        stream.require(batch, [f.name for f in stream.KEY_FIELDS] + ["entities", "info"], "commit")
        if batch.num_rows == 0:
            return []
        touched: set[tuple[str, str]] = set()
        cols = batch.select(["kind", "source", "input", "position", "passage_index", "info"]).to_pydict()
        keep = []
        for r in range(batch.num_rows):
            key = (cols["source"][r], cols["input"][r])
            if key in self.done:
                self.duplicates += 1
                continue
            p = self._pending(key)
            touched.add(key)
            if cols["kind"][r] == stream.END:
                p.end = json.loads(cols["info"][r])
                continue
            pkey = (cols["position"][r], cols["passage_index"][r])
            if pkey in p.seen:
                self.duplicates += 1
                continue
            p.seen.add(pkey)
            keep.append(r)
        if keep:
            self._gather_entities(batch.take(pa.array(keep, pa.int64())))
        completed = []
        for key in sorted(touched):
            p = self.pending.get(key)
            if p is not None and p.end is not None and len(p.seen) >= p.end["counts"].get("ner_passages", 0):
                completed.append(self._commit(key, p))
        return completed

    def _pending(self, key: tuple[str, str]) -> _Pending:
        p = self.pending.get(key)
        if p is None:
            if key not in self.items:
                raise KeyError(f"commit: a row for {key[0]}/{key[1]}, which is not in this run's plan")
            p = self.pending[key] = _Pending(self.items[key], time.perf_counter())
        return p

    def _gather_entities(self, batch: pa.Table) -> None:
        """Explode the entity lists into flat rows, appended to each input's parts."""
        lens = pc.list_value_length(batch.column("entities")).fill_null(0)
        if pc.sum(lens).as_py() in (None, 0):
            return
        parent = pc.list_parent_indices(batch.column("entities"))
        flat = pc.list_flatten(batch.column("entities"))
        rows = batch.select(["source", "input", "position", "doc_id", "version", "passage_index"]).take(parent)
        for name in ("bank", "start", "end", "text", "label", "score"):
            rows = rows.append_column(name, pc.struct_field(flat, name))
        for key in set(zip(rows.column("source").to_pylist(), rows.column("input").to_pylist())):
            mask = pc.and_(pc.equal(rows.column("source"), key[0]), pc.equal(rows.column("input"), key[1]))
            self.pending[key].parts.append(rows.filter(mask).drop_columns(["source", "input"]))

    # -- commit -------------------------------------------------------------------------------
    def _commit(self, key: tuple[str, str], p: _Pending) -> Committed:
        item, end = p.item, p.end
        t0 = time.perf_counter()
        parts = [t for t in p.parts if t.num_rows]
        all_rows = pa.concat_tables(parts) if parts else None
        label_sets: dict[str, LabelSetCommit] = {}
        per_set: dict[str, dict[str, int]] = {}
        for b, bank in enumerate(self.banks):
            if bank.label_set_id not in item.label_sets:
                continue
            table = _entities_table(all_rows, b, bank, self.run_id)
            files = []
            if table.num_rows:
                stem = layout.entities_stem(bank.label_set_id, self.run_id)
                files.append(self.store.write_table("entities", item.source, item.input, stem, table))
            per_label = Counter(table.column("label").to_pylist())
            per_set[bank.label_set_id] = {label: per_label.get(label, 0) for label in bank.labels}
            label_sets[bank.label_set_id] = LabelSetCommit(
                run_id=self.run_id,
                model=bank.model,
                content_hash=bank.content_hash,
                files=files,
                counts={"entities": table.num_rows, "passages": len(p.seen), "per_label": per_set[bank.label_set_id]},
                timings={"ner_wall_s": round(t0 - p.first_seen, 3)},
                scoring=self.scoring,
            )
        self.faults.hit("driver.before_commit")
        previous = self.store.read_entry(item.source, item.input)
        superseded: dict[str, list[LabelSetCommit]] = {}
        if previous is not None and previous.status == "committed" and previous.same_input(item.size, item.etag, item.md5):
            # only some label sets were missing (or are re-annotated): keep the others
            superseded = {k: list(v) for k, v in previous.superseded.items()}
            for ls_id, old in previous.label_sets.items():
                new = label_sets.get(ls_id)
                if new is not None and (old.model, old.content_hash) != (new.model, new.content_hash):
                    superseded.setdefault(ls_id, []).append(old)  # --reannotate: history keeps it
            label_sets = {**previous.label_sets, **label_sets}
        entry = ManifestEntry(
            input=item.input,
            source=item.source,
            url=item.url,
            status=end["status"],
            run_id=self.run_id,
            parse=ParseCommit(run_id=self.run_id, files=end["files"], counts=end["counts"], timings=end["timings"]),
            size=item.size,
            etag=item.etag,
            md5=item.md5,
            error=end["error"],
            label_sets=label_sets,
            superseded=superseded,
            versions=self.versions,
            timings={**end["timings"], "write_entities_s": round(time.perf_counter() - t0, 3)},
        )
        self.store.commit(entry)
        del self.pending[key]
        done = Committed(item, end["status"], end["error"], end["counts"], per_set)
        self.done[key] = done
        log.info("committed %s/%s (%s): %s documents", item.source, item.input, end["status"], end["counts"].get("documents", 0))
        self.faults.hit("driver.after_commit")
        return done

    def incomplete(self) -> list[str]:
        """Inputs of the plan not committed (after the stream ended: a bug or a lost row)."""
        return sorted(f"{s}/{i}" for (s, i) in self.items if (s, i) not in self.done)


def _entities_table(rows: pa.Table | None, bank_index: int, bank: BankInfo, run_id: str) -> pa.Table:
    if rows is None:
        return ENTITIES.empty_table()
    t = rows.filter(pc.equal(rows.column("bank"), bank_index))
    # deterministic row order whatever order batches arrived in
    t = t.sort_by([("position", "ascending"), ("passage_index", "ascending"), ("start", "ascending"), ("end", "ascending"), ("label", "ascending")])
    n = t.num_rows
    columns = {
        "doc_id": t.column("doc_id"),
        "version": t.column("version"),
        "passage_index": t.column("passage_index"),
        "start": t.column("start"),
        "end": t.column("end"),
        "text": t.column("text"),
        "label": t.column("label"),
        "score": t.column("score"),
        "label_set": pa.array([bank.label_set_id] * n, pa.string()),
        "model": pa.array([bank.model] * n, pa.string()),
        "position": t.column("position"),  # written when the schema carries it
        "run_id": pa.array([run_id] * n, pa.string()),
    }
    return pa.table({name: columns[name] for name in ENTITIES.names}, schema=ENTITIES)
