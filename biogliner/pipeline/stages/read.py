"""Parse stage: one CPU task per unit (a PubMed file, or a group of PMC article files), streaming
blocks of passages.

:func:`parse_input` is a plain generator (tested without a cluster). It reads each input file's
events with :func:`biogliner.sources.iter_events`, writes the unit's parse tables (documents,
passages, deletions, errors) as new Delta data files (:func:`biogliner.store.delta.write_data_file`:
invisible until the driver commits them), and yields blocks of ``passage`` rows for NER every
``block_rows`` passages, then one ``end`` row naming the files written. Skips and a file error
become ``errors`` rows: a bad file never raises out of the task (in a PMC unit the other files go
on). The files are closed before the ``end`` row is emitted, so the driver commits only closed
files. :class:`ParseDatasource` wraps it as a Ray Data datasource with one read task per unit.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from biogliner.pipeline.faults import Faults
from biogliner.pipeline.plan import WorkUnit
from biogliner.pipeline.stages import stream
from biogliner.schema import DELETIONS, DOCUMENTS, ERRORS, PASSAGES, Deletion, Document, Skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParseParams:
    output: str
    storage_options: dict[str, Any]  # for the output store (endpoint resolved on the driver)
    run_id: str
    input_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol -> options
    verify_md5: bool = True
    block_rows: int = 512
    fault: str | None = None
    fault_dir: str | None = None


@dataclass
class _Columns:
    """Column-wise row buffers for one table (fewer Python objects than a list of dicts)."""

    schema: pa.Schema
    cols: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cols = {name: [] for name in self.schema.names}

    def add(self, **row: Any) -> None:
        for name, values in self.cols.items():
            values.append(row.get(name))

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self.cols, schema=self.schema)


def parse_input(unit: WorkUnit, params: ParseParams) -> Iterator[pa.Table]:
    """Parse one unit's input files: write its parse tables (unless its parse is committed
    already), yield passage blocks, then one end row."""
    from biogliner import io as bio
    from biogliner.sources import SourceError, iter_events
    from biogliner.store.delta import write_data_file

    t0 = time.perf_counter()
    run_id = params.run_id
    docs, passages, deletions, errors = (_Columns(s) for s in (DOCUMENTS, PASSAGES, DELETIONS, ERRORS))
    block = _Columns(stream.PARSED)
    counts: Counter = Counter()
    skips: Counter = Counter()
    n_ner = 0
    members: list[dict[str, Any]] = []

    def flush() -> pa.Table:
        nonlocal block
        out = block.table()
        block = _Columns(stream.PARSED)
        return out

    for item in unit.members:
        status, error = "committed", None
        try:
            opts = params.input_options.get(bio.protocol_of(item.url))
            for event in iter_events(item.url, storage_options=opts, verify_md5=params.verify_md5):
                if isinstance(event, Document):
                    counts["documents"] += 1
                    docs.add(**_document_row(event), n_passages=len(event.passages), run_id=run_id)
                    for i, p in enumerate(event.passages):
                        counts["passages"] += 1
                        counts["characters"] += len(p.text)
                        passages.add(
                            doc_id=event.doc_id,
                            version=event.version,
                            passage_index=i,
                            section=p.section,
                            text=p.text,
                            position=event.position,
                            run_id=run_id,
                        )
                        if not p.text.strip():
                            counts["blank_passages"] += 1
                            continue
                        block.add(
                            kind=stream.PASSAGE,
                            source=unit.source,
                            input=unit.input,
                            position=event.position,
                            doc_id=event.doc_id,
                            version=event.version,
                            passage_index=i,
                            text=p.text,
                        )
                        n_ner += 1
                        if len(block) >= params.block_rows:
                            yield flush()
                elif isinstance(event, Deletion):
                    counts["deletions"] += 1
                    deletions.add(
                        doc_id=event.doc_id,
                        pmid=event.pmid,
                        version=event.version,
                        source_file=event.source_file,
                        position=event.position,
                        run_id=run_id,
                    )
                elif isinstance(event, Skip):
                    skips[event.reason] += 1
                    errors.add(
                        source_file=event.source_file,
                        position=event.position,
                        record_id=event.record_id,
                        kind="skip",
                        reason=event.reason,
                        detail=event.detail,
                        run_id=run_id,
                    )
                else:  # a reader bug, not bad input: fail loudly
                    raise TypeError(f"{item.url}: unexpected event {type(event).__name__}")
        except SourceError as exc:
            status, error = "failed", str(exc)
            errors.add(
                source_file=exc.source_file,
                position=exc.position,
                record_id=exc.record_id,
                kind="file_error",
                reason=getattr(exc, "kind", type(exc).__name__),
                detail=str(exc),
                run_id=run_id,
            )
            log.warning("parse failed: %s", exc)
        except (OSError, EOFError, ValueError) as exc:  # I/O or decoding trouble the reader did not type
            status, error = "failed", f"{item.input}: {type(exc).__name__}: {exc}"
            errors.add(
                source_file=item.url.rsplit("/", 1)[-1],
                position=None,
                record_id=None,
                kind="file_error",
                reason=type(exc).__name__,
                detail="".join(traceback.format_exception_only(type(exc), exc)).strip(),
                run_id=run_id,
            )
            log.warning("parse failed: %s", error)
        members.append({**item.record(), "status": status, "error": error})
    if len(block):
        yield flush()
    t_parse = time.perf_counter() - t0

    files = []
    if unit.parse_version is not None:  # entities only: the committed parse tables stay as they are
        pv = {"source": unit.source, "input": unit.input}
        for table, cols in (("documents", docs), ("passages", passages), ("deletions", deletions), ("errors", errors)):
            if len(cols):
                files.append(asdict(write_data_file(params.output, table, cols.table(), pv, params.storage_options)))
    Faults(params.fault, params.fault_dir).hit("parse.after_write", once_key="task")

    failed = [m for m in members if m["status"] != "committed"]
    counts["skipped"] = sum(skips.values())
    counts["errors"] = len(errors)
    counts["ner_passages"] = n_ner
    counts["files"] = len(members)
    counts["files_failed"] = len(failed)
    info = {
        # a unit fails when none of its files could be read (a PubMed unit: its one file)
        "status": "failed" if len(failed) == len(members) else "committed",
        "error": "; ".join(m["error"] for m in failed[:3]) or None,
        "files": files,
        "members": members,
        "counts": {**counts, "skips": dict(skips)},
        "timings": {"parse_s": round(t_parse, 3), "write_s": round(time.perf_counter() - t0 - t_parse, 3)},
    }
    end = _Columns(stream.PARSED)
    end.add(kind=stream.END, source=unit.source, input=unit.input, info=json.dumps(info))
    yield end.table()


def _document_row(d: Document) -> dict[str, Any]:
    return {
        "doc_id": d.doc_id,
        "pmid": d.pmid,
        "version": d.version,
        "pmcid": d.pmcid,
        "doi": d.doi,
        "status": d.status,
        "language": d.language,
        "year": d.year,
        "journal": d.journal,
        "license": d.license,
        "source_file": d.source_file,
        "position": d.position,
    }


def parse_datasource(items: list[WorkUnit], params: ParseParams, tokenize=None, batch_size: int | None = None):
    """A Ray Data datasource: one read task per input, each streaming several blocks.

    With ``tokenize`` (a :class:`~biogliner.pipeline.stages.tokenize.Tokenize`) and ``batch_size``, the
    read task also tokenises its passages and groups them into the model stage's micro-batches
    (:func:`biogliner.pipeline.stages.batching.micro_batches`): chunking and tokenising stay in CPU
    tasks (Ray Data would otherwise fuse a separate map stage into the model actors), and the
    batches depend on the input alone."""
    if tokenize is not None and batch_size is None:
        raise ValueError("parse_datasource: tokenize needs the batch_size to group micro-batches by")

    def read(item: WorkUnit):
        blocks = parse_input(item, params)
        if tokenize is None:
            yield from blocks
        else:
            from biogliner.pipeline.stages.batching import micro_batches

            yield from micro_batches(blocks, tokenize.encode, batch_size)

    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class ParseDatasource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return sum(i.size or 0 for i in items) or None

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list[ReadTask]:
            tasks = []
            for item in items:
                meta = BlockMetadata(num_rows=None, size_bytes=item.size, exec_stats=None, input_files=tuple(m.url for m in item.members))
                schema = stream.BATCHED if tokenize is not None else stream.PARSED
                tasks.append(ReadTask(lambda item=item: read(item), meta, schema=schema))
            return tasks

        def get_name(self) -> str:
            return "ParseInputs"

    return ParseDatasource()
