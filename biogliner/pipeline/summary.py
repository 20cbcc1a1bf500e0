"""The run summary: printed at the end and saved as ``<output>/_runs/<run_id>.json``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class RunSummary:
    run_id: str
    started_at: str
    config: dict[str, Any]
    files_total: int = 0
    files_skipped: int = 0  # already committed from the same bytes: nothing to do
    files_committed: int = 0
    files_failed: int = 0
    units_committed: int = 0  # units (a PubMed file, a group of PMC files) committed by this run
    failed: list[dict[str, str | None]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    fatal: str | None = None  # the exception that stopped the run, if any
    documents: int = 0
    passages: int = 0
    deletions: int = 0
    skipped_records: int = 0
    errors: int = 0  # rows written to the errors table (skips + file errors)
    entities: dict[str, dict[str, int]] = field(default_factory=dict)  # label set -> label -> n
    duplicates: int = 0  # rows re-emitted by retried tasks and dropped
    model_fingerprint: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    finished_at: str | None = None
    url: str | None = None

    @classmethod
    def start(cls, config, started: float) -> "RunSummary":
        ts = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
        return cls(run_id=config.run_id, started_at=ts, config=config.public_dict())

    def add_committed(self, done) -> None:
        """Count a committed unit (:class:`biogliner.pipeline.stages.commit.Committed`): its input files,
        each committed or failed (a failed file's error is in the ``errors`` table)."""
        members = done.members or [{"input": m.input, "url": m.url, "status": done.status, "error": done.error} for m in done.unit.members]
        for m in members:
            if m.get("status", "committed") == "committed":
                self.files_committed += 1
            else:
                self.files_failed += 1
                self.failed.append({"input": f"{done.unit.source}/{m['input']}", "unit": done.unit.input, "url": m.get("url"), "error": m.get("error")})
        self.units_committed += 1
        c = done.counts
        self.documents += c.get("documents", 0)
        self.passages += c.get("passages", 0)
        self.deletions += c.get("deletions", 0)
        self.skipped_records += c.get("skipped", 0)
        self.errors += c.get("errors", 0)
        for set_id, per_label in done.entities.items():
            acc = Counter(self.entities.get(set_id, {}))
            acc.update(per_label)
            self.entities[set_id] = {k: acc.get(k, 0) for k in per_label} | {k: v for k, v in acc.items() if k not in per_label}

    def finish(self, wall_s: float) -> None:
        self.wall_s = round(wall_s, 3)
        self.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    @property
    def ok(self) -> bool:
        return self.files_failed == 0 and not self.incomplete and self.fatal is None

    @property
    def status(self) -> str:
        if not self.ok:
            return "failed"
        return "nothing_to_do" if self.files_committed == 0 else "ok"

    @property
    def docs_per_s(self) -> float:
        return round(self.documents / self.wall_s, 3) if self.wall_s > 0 else 0.0

    def progress_line(self, n_todo: int, elapsed: float) -> str:
        done = self.files_committed + self.files_failed
        rate = self.documents / elapsed if elapsed > 0 else 0.0
        ents = sum(sum(v.values()) for v in self.entities.values())
        return (
            f"progress: {done}/{n_todo} files ({self.files_failed} failed), {self.documents} documents, "
            f"{self.passages} passages, {ents} entities, {rate:.1f} documents/s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
            "documents_per_s": self.docs_per_s,
            "files": {
                "total": self.files_total,
                "skipped": self.files_skipped,
                "committed": self.files_committed,
                "failed": self.files_failed,
                "incomplete": len(self.incomplete),
            },
            "units_committed": self.units_committed,
            "failed": self.failed,
            "incomplete": self.incomplete,
            "fatal": self.fatal,
            "documents": self.documents,
            "passages": self.passages,
            "deletions": self.deletions,
            "skipped_records": self.skipped_records,
            "errors": self.errors,
            "entities": self.entities,
            "entities_total": sum(sum(v.values()) for v in self.entities.values()),
            "duplicates_dropped": self.duplicates,
            "model_fingerprint": self.model_fingerprint,
            "timings": self.timings,
            "config": self.config,
        }

    def render(self) -> str:
        d = self.to_dict()
        f = d["files"]
        lines = [
            f"run {self.run_id}: {d['status']}",
            f"  files: {f['total']} total, {f['committed']} committed, {f['skipped']} already done, {f['failed']} failed"
            + (f", {f['incomplete']} incomplete" if f["incomplete"] else ""),
            f"  documents {self.documents}, passages {self.passages}, deletions {self.deletions}, "
            f"skipped records {self.skipped_records}, error rows {self.errors}",
        ]
        for set_id, per_label in self.entities.items():
            parts = ", ".join(f"{k}: {v}" for k, v in per_label.items())
            lines.append(f"  entities [{set_id}] {sum(per_label.values())}: {parts}")
        for fl in self.failed:
            lines.append(f"  FAILED {fl['input']}: {fl['error']}")
        if self.fatal:
            lines.append(f"  STOPPED: {self.fatal}")
        for inc in self.incomplete[:10]:
            lines.append(f"  INCOMPLETE {inc}")
        lines.append(f"  wall {self.wall_s:.1f} s, {self.docs_per_s:.1f} documents/s")
        if self.url:
            lines.append(f"  summary: {self.url}")
        return "\n".join(lines)
