"""Benchmark: the driver's commit capacity, the Delta driver against the pre-Delta one, local disk.

What is measured is the real driver code, fed what the model stage sends it:

- ``delta``: :class:`biogliner.pipeline.stages.commit.Committer` (the driver of the Delta store) fed
  ``stream.WRITTEN`` rows. Beforehand (timed apart, not part of the capacity), a thread pool
  plays the parse tasks and the model actors with :func:`biogliner.store.delta.write_data_file`:
  per unit a documents file and a passages file (what ``biogliner/pipeline/stages/read.py`` writes;
  no deletions or errors), and one entities file per simulated model-actor call (``ner.py``
  writes one file per unit and label set per call). The messages are built as those stages build
  them: one ``written`` row per call (``mbs``: the call's micro-batch ids, ``keys``: the pickled
  passage keys per micro-batch, ``info``: ``{"files", "per_label", "passages"}``) and the unit's
  ``end`` row (``info``: status, error, files, members, counts, timings and ``micro_batches``,
  which ``batching.py`` adds). Micro-batches are ``--batch-size`` passages in document order;
  a call covers ``--rows-per-call`` passages (the pipeline's defaults: 8 and 16 x 8). The rows
  reach ``Committer.add`` in groups of ``--units-per-add`` units: the group's messages are
  interleaved across its units and handed over ``--messages-per-add`` rows at a time, each
  unit's last ``written`` row and its ``end`` row come in one final ``add``, which completes the
  whole group, so the driver commits those units in one ``commit_units`` call (one Delta commit
  per data table plus one for ``commits``). Only the ``add`` calls are timed (intake + commit).
  A second pass with one unit per ``add`` shows the driver's cost when units complete one at a
  time.
- ``pre_delta`` (the peer, same run): the driver as it was before Delta, the ``Committer`` of
  ``biogliner/pipeline/commit.py`` over the manifest ``Store`` of ``biogliner/store/manifest.py``
  at git revision ``--peer-rev`` (81785c8). Those modules no longer exist in the tree: they are
  read with ``git show <rev>:<path>`` into a temporary package at bench time (with the old
  ``stream``, ``plan``, ``faults`` and ``layout`` modules they import; ``schema`` and ``io`` are
  today's) and removed afterwards; without git history the script stops with a message (or pass
  ``--peer-units 0``). It is fed what its model stage emitted: ``stream.ANNOTATED`` passage rows
  with their entity lists, the same blocks of model output as the ``delta`` pass gets as
  ``written`` rows (``--messages-per-add`` x ``--rows-per-call`` passage rows per ``add``, or
  ``--peer-rows-per-add``), the input's ``end`` row with its last rows; it explodes, filters, sorts and writes the entities file itself and PUTs the
  manifest entry, one input at a time. Before Delta every PMC article was its own input: pass
  ``--peer-docs-per-input 1`` for the PMC-like run.

Capacity = documents (abstracts, or PMC articles) committed / driver seconds, over all ``add``
calls after the first group (the first creates the tables, reported apart); per group the
mean by tenth of the run shows the drift as the Delta logs grow. Tables start empty. Writes JSON.

    python scripts/bench_commit.py                       # 100 units x 1,000 abstracts (about a minute, 2 cores)
    python scripts/bench_commit.py --units 20 --abstracts-per-unit 30000 --units-per-add 4 \\
        --peer-units 8 --out benchmarks/bench_commit_pubmed_units.json          # PubMed-file-sized units (~3 min)
    python scripts/bench_commit.py --source pmc --units 50 --abstracts-per-unit 2000 --passages-per-doc 20 \\
        --units-per-add 10 --peer-units 1 --peer-docs-per-input 1 --out benchmarks/bench_commit_pmc_units.json  # ~5 min
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from biogliner.pipeline.stages import stream  # noqa: E402
from biogliner.schema import DOCUMENTS, ENTITIES, PASSAGES  # noqa: E402
from biogliner.store.delta import write_data_file  # noqa: E402

PEER_REV = "81785c8"  # the last commit with the manifest store and the driver that wrote entities itself
LABEL_SET = "bio@1"
MODEL = "sha256:0123456789abcdef"
LABELS = np.array(["gene", "protein", "disease", "chemical", "species", "cell_line", "cell_type", "mutation", "drug", "anatomy", "organism", "pathway"])
WORDS = np.array("the of protein expression cells patients cancer gene treatment study results mice increased tumor disease clinical activity".split())


# --------------------------------------------------------------------------------------------- stub rows
class Shape:
    """Documents per unit, passages per document, entities per passage, characters per passage."""

    def __init__(self, source: str, docs: int, passages_per_doc: int, entities_per_doc: int, chars: int):
        self.source, self.docs, self.ppd, self.epd, self.chars = source, docs, passages_per_doc, entities_per_doc, chars

    @property
    def passages(self) -> int:
        return self.docs * self.ppd

    def name(self, index: int) -> str:
        return f"unit{index:05d}" if self.source == "pubmed" else f"pmc-20261206T000000-{index:010x}"


def stub_unit(index: int, shape: Shape, run_id: str = "bench") -> dict[str, pa.Table]:
    """The rows one unit produces (deterministic from ``index``): documents, passages, entities.
    PubMed-like (2 passages): a title and a ``chars``-character abstract, 85% of the entities in
    the abstract; otherwise ``passages_per_doc`` passages of ``chars`` characters, entities spread
    evenly. Entities: short mention texts, a dozen labels, float32 scores."""
    rng = np.random.default_rng(index)
    n, ppd = shape.docs, shape.ppd
    pos = np.arange(n, dtype=np.int64)
    ids = 30_000_000 + index * n + pos
    prefix = "pubmed:" if shape.source == "pubmed" else "pmc:PMC"
    doc_ids = pa.array([f"{prefix}{p}" for p in ids.tolist()], pa.string())
    docs = pa.table(
        {
            "doc_id": doc_ids,
            "pmid": pa.array(ids),
            "version": pa.array(np.ones(n, np.int32)),
            "pmcid": pa.nulls(n, pa.string()) if shape.source == "pubmed" else pa.array([f"PMC{p}" for p in ids.tolist()]),
            "doi": pa.array([f"10.1000/{p}" for p in ids.tolist()]),
            "status": pa.array(["MEDLINE"] * n),
            "language": pa.array(["eng"] * n),
            "year": pa.array(rng.integers(1990, 2026, n).astype(np.int32)),
            "journal": pa.array([f"Journal {j}" for j in rng.integers(0, 500, n).tolist()]),
            "license": pa.nulls(n, pa.string()),
            "source_file": pa.array([f"{shape.name(index)}.xml.gz"] * n) if shape.source == "pubmed" else pa.array([f"PMC{p}.xml" for p in ids.tolist()]),
            "position": pa.array(pos if shape.source == "pubmed" else np.zeros(n, np.int64)),
            "n_passages": pa.array(np.full(n, ppd, np.int32)),
            "run_id": pa.array([run_id] * n),
        },
        schema=DOCUMENTS,
    )
    body = " ".join(WORDS[rng.integers(0, len(WORDS), 200)].tolist())
    body = (body * (shape.chars // len(body) + 1))[: shape.chars]
    texts = []
    for p in ids.tolist():
        texts.append(f"Title of article {p}")
        texts += [f"{p}.{k} {body}" for k in range(1, ppd)]
    passages = pa.table(
        {
            "doc_id": pa.array(np.repeat(np.array(doc_ids.to_pylist(), dtype=object), ppd).tolist(), pa.string()),
            "version": pa.array(np.ones(n * ppd, np.int32)),
            "position": pa.array(np.repeat(pos, ppd)),
            "passage_index": pa.array(np.tile(np.arange(ppd, dtype=np.int32), n)),
            "section": pa.array((["title"] + ["abstract" if ppd == 2 else "body"] * (ppd - 1)) * n),
            "text": pa.array(texts, pa.large_string()),
            "run_id": pa.array([run_id] * (n * ppd)),
        },
        schema=PASSAGES,
    )
    m = n * shape.epd
    owner = np.repeat(np.arange(n), shape.epd)
    if ppd == 2:
        pidx = (rng.random(m) < 0.85).astype(np.int32)
    else:
        pidx = rng.integers(0, ppd, m).astype(np.int32)
    start = rng.integers(0, max(1, shape.chars - 40), m).astype(np.int32)
    length = rng.integers(3, 30, m).astype(np.int32)
    order = np.lexsort((start, pidx, owner))  # document order, as the model stage sees passages
    owner, pidx, start, length = owner[order], pidx[order], start[order], length[order]
    entities = pa.table(
        {
            "doc_id": doc_ids.take(pa.array(owner)),
            "version": pa.array(np.ones(m, np.int32)),
            "position": pa.array(owner.astype(np.int64)),
            "passage_index": pa.array(pidx),
            "start": pa.array(start),
            "end": pa.array(start + length),
            "text": pa.array(WORDS[rng.integers(0, len(WORDS), m)].tolist(), pa.string()),
            "label": pa.array(LABELS[rng.integers(0, len(LABELS), m)].tolist(), pa.string()),
            "score": pa.array(rng.uniform(0.3, 1.0, m).astype(np.float32)),
            "label_set": pa.array([LABEL_SET] * m),
            "model": pa.array([MODEL] * m),
            "run_id": pa.array([run_id] * m),
        },
        schema=ENTITIES,
    )
    return {"documents": docs, "passages": passages, "entities": entities}


def _passage_key(entities: pa.Table, ppd: int) -> np.ndarray:
    return np.asarray(entities.column("position")) * ppd + np.asarray(entities.column("passage_index"))


# --------------------------------------------------------------------------------------------- delta path
def members_of(index: int, shape: Shape) -> list[dict]:
    """The unit's input files as parse.py records them (``end`` info ``members``)."""
    if shape.source == "pubmed":
        names = [shape.name(index)]
    else:
        names = [f"PMC{30_000_000 + index * shape.docs + i}" for i in range(shape.docs)]
    return [{"input": nm, "url": f"s3://bench/{shape.source}/{nm}.xml" + (".gz" if shape.source == "pubmed" else ""), "size": 123_456,
             "etag": f"{index:08x}{i:024x}", "md5": None, "mtime": 1_765_000_000.0 + i, "status": "committed", "error": None}
            for i, nm in enumerate(names)]


def write_unit_delta(root: str, index: int, shape: Shape, batch_size: int, rows_per_call: int) -> dict:
    """What the parse task and the model actors do for one unit: write its files; return the
    messages they send the driver (``written`` rows and the ``end`` row, as dicts)."""
    t = stub_unit(index, shape)
    name = shape.name(index)
    pv = {"source": shape.source, "input": name}
    t0 = time.perf_counter()
    parse_files = [asdict(write_data_file(root, tbl, t[tbl], pv)) for tbl in ("documents", "passages")]
    n_pass = shape.passages
    n_mbs = -(-n_pass // batch_size)
    mbs_per_call = max(1, -(-rows_per_call // batch_size))
    ents = t["entities"]
    ekey = _passage_key(ents, shape.ppd)
    doc_ids = t["documents"].column("doc_id").to_pylist()
    written = []
    for first_mb in range(0, n_mbs, mbs_per_call):
        mbs = list(range(first_mb, min(n_mbs, first_mb + mbs_per_call)))
        p0, p1 = mbs[0] * batch_size, min(n_pass, (mbs[-1] + 1) * batch_size)
        lo, hi = np.searchsorted(ekey, [p0, p1])
        part = ents.slice(int(lo), int(hi - lo))
        files = {}
        if part.num_rows:
            files[LABEL_SET] = asdict(write_data_file(root, "entities", part, pv))
        per_label = dict(Counter(part.column("label").to_pylist()))
        keys = {mb: [(doc_ids[p // shape.ppd], p // shape.ppd, p % shape.ppd) for p in range(mb * batch_size, min(n_pass, (mb + 1) * batch_size))]
                for mb in mbs}
        written.append({"kind": stream.WRITTEN_KIND, "source": shape.source, "input": name, "mbs": mbs,
                        "keys": pickle.dumps(keys, protocol=pickle.HIGHEST_PROTOCOL),
                        "info": json.dumps({"files": files, "per_label": {LABEL_SET: per_label}, "passages": p1 - p0})})
    write_s = time.perf_counter() - t0
    counts = {"documents": shape.docs, "passages": n_pass, "characters": int(sum(len(x) for x in t["passages"].column("text").to_pylist())),
              "skipped": 0, "errors": 0, "ner_passages": n_pass, "files": len(members_of(index, shape)), "files_failed": 0, "skips": {}}
    info = {"status": "committed", "error": None, "files": parse_files, "members": members_of(index, shape), "counts": counts,
            "timings": {"parse_s": 1.0, "write_s": round(write_s, 3)}, "micro_batches": n_mbs}
    end = {"kind": stream.END, "source": shape.source, "input": name, "mbs": None, "keys": None, "info": json.dumps(info)}
    return {"index": index, "name": name, "written": written, "end": end, "files": 2 + len(written),
            "entities": ents.num_rows, "rows": t["documents"].num_rows + t["passages"].num_rows + ents.num_rows}


def _written_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pydict({n: [r.get(n) for r in rows] for n in stream.WRITTEN.names}, schema=stream.WRITTEN)


def delta_adds(group: list[dict], messages_per_add: int) -> list[pa.Table]:
    """The ``add`` batches for one group of units: every ``written`` row but each unit's last,
    interleaved across the group, ``messages_per_add`` at a time; then the last ``written`` row
    and the ``end`` row of every unit in one batch (it completes the whole group)."""
    heads = [u["written"][:-1] for u in group]
    inter = [h[i] for i in range(max((len(h) for h in heads), default=0)) for h in heads if i < len(h)]
    adds = [_written_table(inter[i : i + messages_per_add]) for i in range(0, len(inter), messages_per_add)]
    adds.append(_written_table([x for u in group for x in (u["written"][-1:] + [u["end"]])]))
    return adds


def delta_pass(root: str, shape: Shape, units: int, units_per_add: int, args) -> dict:
    from biogliner.pipeline.stages.commit import BankInfo, Committer
    from biogliner.pipeline.plan import InputFile, WorkUnit
    from biogliner.store.output import Output

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        made = list(pool.map(lambda i: write_unit_delta(root, i, shape, args.batch_size, args.rows_per_call), range(units)))
    write_s = time.perf_counter() - t0

    work = [WorkUnit(shape.source, u["name"], tuple(InputFile(url=m["url"], source=shape.source, input=m["input"], size=m["size"], etag=m["etag"],
                                                                  mtime=m["mtime"]) for m in members_of(u["index"], shape)),
                     (LABEL_SET,), 1, ((LABEL_SET, 1),)) for u in made]
    output = Output(root)
    bank = BankInfo(LABEL_SET, MODEL, tuple(LABELS.tolist()), "content-hash-bench")
    committer = Committer(output, work, [bank], "bench", scoring={"batch_size": args.batch_size})
    groups = [made[i : i + units_per_add] for i in range(0, len(made), units_per_add)]
    group_s, group_adds, intake_s = [], [], 0.0
    for g in groups:
        adds = delta_adds(g, args.messages_per_add)  # built before the clock starts
        before = committer.commit_s
        t = time.perf_counter()
        done = []
        for b in adds:
            done += committer.add(b)
        dt = time.perf_counter() - t
        group_s.append(dt)
        group_adds.append(len(adds))
        intake_s += dt - (committer.commit_s - before)
        assert len(done) == len(g) and all(c.status == "committed" for c in done), f"group not committed: {len(done)} of {len(g)}"
    assert not committer.incomplete() and committer.duplicates == 0 and committer.rewritten == 0

    # a rerun (a new driver over the committed tables) commits nothing: the fast path, timed
    again = Committer(output, work[:units_per_add], [bank], "bench-rerun")
    adds = delta_adds(made[:units_per_add], args.messages_per_add)
    t = time.perf_counter()
    for b in adds:
        again.add(b)
    rerun_s = time.perf_counter() - t
    assert again.already == len(made[:units_per_add]), again.already

    state = output.state()
    parse = [r for r in state.records if r.kind == "parse"]
    ents = [r for r in state.records if r.kind == "entities"]
    commits = output.commits_table()
    assert len(parse) == units and len(ents) == units, (len(parse), len(ents))
    committed_entities = sum(commits.column("rows_entities").to_pylist())
    assert committed_entities == sum(u["entities"] for u in made), committed_entities
    assert sum(commits.column("rows_documents").to_pylist()) == units * shape.docs
    res = summarize(group_s, units_per_add * shape.docs)
    res.update(
        {
            "units_per_add_completing": units_per_add,
            "add_calls_per_group": round(statistics.mean(group_adds), 1),
            "messages_per_unit": round(statistics.mean(len(u["written"]) + 1 for u in made), 1),
            "driver_intake_s_total": round(intake_s, 4),
            "driver_commit_units_s_total": round(committer.commit_s, 4),
            "rerun_of_committed_group_s": round(rerun_s, 5),
            "workers_write_s": round(write_s, 3),
            "workers_docs_per_s": round(units * shape.docs / write_s),
            "files": sum(u["files"] for u in made),
            "entity_files_per_unit": round(statistics.mean(u["files"] - 2 for u in made), 1),
            "rows": sum(u["rows"] for u in made),
            "commits_rows": commits.num_rows,
            "committed_entities": committed_entities,
            "table_versions": {t: output.delta.version(t) for t in ("documents", "passages", "entities", "commits")},
            "committed_files_entities": len(output.files("entities")),
        }
    )
    return res


# --------------------------------------------------------------------------------------------- the peer
PEER_FILES = {  # the pre-Delta modules, as they are placed in the temporary package
    "pipeline/commit.py": "biogliner/pipeline/commit.py",
    "pipeline/stream.py": "biogliner/pipeline/stream.py",
    "pipeline/plan.py": "biogliner/pipeline/plan.py",
    "pipeline/faults.py": "biogliner/pipeline/faults.py",
    "store/manifest.py": "biogliner/store/manifest.py",
    "store/layout.py": "biogliner/store/layout.py",
}


def _git_show(rev: str, path: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise SystemExit(
            f"bench_commit: the peer (the pre-Delta driver) is read from git history, `git show {rev}:{path}` failed: "
            f"{detail.strip()}\nRun from a git clone that holds commit {rev} (not a shallow clone or an sdist), "
            "or pass --peer-units 0 to measure the Delta driver alone."
        ) from None


def check_peer_available(rev: str) -> None:
    """Fail before any work when git history cannot give the pre-Delta modules."""
    for path in PEER_FILES.values():
        _git_show(rev, path)


def load_pre_delta(rev: str) -> tuple[object, str]:
    """The pre-Delta driver and store, from git history, as a temporary package; returns
    (package module, its folder). Raises SystemExit with a message when git cannot give them."""
    pkg = f"biogliner_pre_delta_{re.sub(r'[^A-Za-z0-9_]', '_', rev)}"
    tmp = tempfile.mkdtemp(prefix="bench_commit_peer_")
    mods = {"pipeline": ("commit", "stream", "plan", "faults"), "store": ("manifest", "layout")}
    for rel, path in PEER_FILES.items():
        try:
            text = _git_show(rev, path)
        except SystemExit:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for sub, names in mods.items():  # imports of the other old modules go to the old copies
            for nm in names:
                text = re.sub(rf"\bfrom biogliner\.{sub}\.{nm} import", f"from {pkg}.{sub}.{nm} import", text)
            text = re.sub(rf"\bfrom biogliner\.{sub} import ({'|'.join(names)})\b", rf"from {pkg}.{sub} import \1", text)
        dest = Path(tmp, pkg, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    for d in ("", "pipeline", "store"):
        Path(tmp, pkg, d, "__init__.py").touch()
    sys.path.insert(0, tmp)
    return importlib.import_module(pkg), tmp


def annotated_batches(index: int, shape: Shape, docs_per_input: int, rows_per_add: int, stream_old) -> list[tuple[str, list[pa.Table]]]:
    """The pre-Delta driver's input for one stub unit cut into inputs of ``docs_per_input``
    documents: per input, the model stage's ``passage`` rows (``ANNOTATED``: each with its list of
    entities) ``rows_per_add`` at a time, the input's ``end`` row in the last batch."""
    t = stub_unit(index, shape)
    ents = t["entities"]
    ppd = shape.ppd
    ekey = _passage_key(ents, ppd)
    offsets = np.searchsorted(ekey, np.arange(shape.passages + 1)).astype(np.int32)
    structs = pa.StructArray.from_arrays(
        [pa.array(np.zeros(ents.num_rows, np.int16)), *(ents.column(c).combine_chunks() for c in ("start", "end", "text", "label", "score"))],
        fields=list(stream_old.ENTITY_STRUCT),
    )
    pos = np.repeat(np.arange(shape.docs, dtype=np.int64), ppd)
    doc_ids = t["documents"].column("doc_id").to_pylist()
    out = []
    for d0 in range(0, shape.docs, docs_per_input):
        d1 = min(shape.docs, d0 + docs_per_input)
        name = shape.name(index) if docs_per_input >= shape.docs else f"PMC{30_000_000 + index * shape.docs + d0}"
        p0, p1 = d0 * ppd, d1 * ppd
        n = p1 - p0
        rows = pa.table(
            {
                "kind": pa.array([stream_old.PASSAGE] * n),
                "source": pa.array([shape.source] * n),
                "input": pa.array([name] * n),
                "position": pa.array(pos[p0:p1] if shape.source == "pubmed" else np.zeros(n, np.int64)),
                "doc_id": pa.array([doc_ids[p // ppd] for p in range(p0, p1)], pa.string()),
                "version": pa.array(np.ones(n, np.int32)),
                "passage_index": pa.array(np.tile(np.arange(ppd, dtype=np.int32), d1 - d0)),
                "entities": pa.ListArray.from_arrays(pa.array(offsets[p0 : p1 + 1] - offsets[p0]), structs.slice(int(offsets[p0]), int(offsets[p1] - offsets[p0]))),
                "info": pa.nulls(n, pa.string()),
            },
            schema=stream_old.ANNOTATED,
        )
        info = {"status": "committed", "error": None,
                "files": {"documents": [f"documents/source={shape.source}/input={name}/part-bench.parquet"],
                          "passages": [f"passages/source={shape.source}/input={name}/part-bench.parquet"]},
                "counts": {"documents": d1 - d0, "passages": n, "ner_passages": n, "skipped": 0, "errors": 0, "skips": {}},
                "timings": {"parse_s": 1.0, "write_s": 0.1}}
        end = pa.table({"kind": [stream_old.END], "source": [shape.source], "input": [name], "position": pa.nulls(1, pa.int64()),
                        "doc_id": pa.nulls(1, pa.string()), "version": pa.nulls(1, pa.int32()), "passage_index": pa.nulls(1, pa.int32()),
                        "entities": pa.nulls(1, stream_old.ANNOTATED.field("entities").type), "info": [json.dumps(info)]},
                       schema=stream_old.ANNOTATED)
        batches = [rows.slice(i, rows_per_add) for i in range(0, n, rows_per_add)]
        batches[-1] = pa.concat_tables([batches[-1], end])
        out.append((name, batches))
    return out


def peer_pass(root: str, shape: Shape, docs: int, docs_per_input: int, args) -> dict:
    """The pre-Delta driver over its manifest store; timed per input: all its ``add`` calls."""
    pkg, tmp = load_pre_delta(args.peer_rev)
    try:
        commit = importlib.import_module(f"{pkg.__name__}.pipeline.commit")
        plan = importlib.import_module(f"{pkg.__name__}.pipeline.plan")
        manifest = importlib.import_module(f"{pkg.__name__}.store.manifest")
        stream_old = importlib.import_module(f"{pkg.__name__}.pipeline.stream")
        bank = commit.BankInfo(LABEL_SET, MODEL, tuple(LABELS.tolist()))
        times, entities, n_inputs, index, committer, done_docs = [], 0, 0, 0, None, 0
        while done_docs < docs:
            inputs = annotated_batches(index, shape, docs_per_input, args.peer_rows_per_add, stream_old)
            items = [plan.InputFile(url=f"/in/{nm}.xml", source=shape.source, input=nm, size=1, label_sets=(LABEL_SET,)) for nm, _ in inputs]
            if committer is None:
                committer = commit.Committer(manifest.Store(root), items, [bank], "bench")
            committer.items.update({(i.source, i.input): i for i in items})
            for nm, batches in inputs:
                if done_docs >= docs:
                    break
                t0 = time.perf_counter()
                done = []
                for b in batches:
                    done += committer.add(b)
                times.append(time.perf_counter() - t0)
                assert len(done) == 1 and done[0].status == "committed"
                entities += sum(done[0].entities[LABEL_SET].values())
                n_inputs += 1
                done_docs += min(docs_per_input, shape.docs)
            index += 1
        n_files = sum(1 for _ in Path(root, "entities").rglob("*.parquet"))
        res = summarize(times, min(docs_per_input, shape.docs))
        res.update({"rev": args.peer_rev, "inputs": n_inputs, "docs_per_input": min(docs_per_input, shape.docs), "rows_per_add": args.peer_rows_per_add,
                    "entities": entities, "entity_files_written_by_driver": n_files})
        return res
    finally:
        sys.path.remove(tmp)
        for m in [m for m in sys.modules if m == pkg.__name__ or m.startswith(pkg.__name__ + ".")]:
            del sys.modules[m]
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- report
def summarize(times: list[float], docs_per_call: int) -> dict:
    """Driver seconds per timed call (a group of units, or one peer input); the first call
    (which creates the tables) is reported apart."""
    first, steady = times[0], (times[1:] or times)
    mean = statistics.mean(steady)
    tenth = max(1, len(steady) // 10)
    p95 = sorted(steady)[max(0, math.ceil(0.95 * len(steady)) - 1)]
    return {
        "timed_calls": len(times),
        "docs_per_timed_call": docs_per_call,
        "first_call_s_creates_tables": round(first, 5),
        "driver_s_per_timed_call_after_first": {
            "mean": round(mean, 5),
            "median": round(statistics.median(steady), 5),
            "p95": round(p95, 5),
            "max": round(max(steady), 5),
            "mean_by_tenth": [round(statistics.mean(steady[i : i + tenth]), 5) for i in range(0, len(steady), tenth)],
        },
        "driver_capacity_docs_per_s": round(docs_per_call / mean),
        "driver_capacity_docs_per_s_median_call": round(docs_per_call / statistics.median(steady)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=("pubmed", "pmc"), default="pubmed", help="partition naming and document shape")
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--abstracts-per-unit", type=int, default=1000, help="documents per unit (PMC: articles)")
    ap.add_argument("--passages-per-doc", type=int, default=2, help="2: title + abstract; PMC-like: more")
    ap.add_argument("--entities-per-doc", type=int, default=None, help="default 6 per passage (12 per abstract)")
    ap.add_argument("--chars-per-passage", type=int, default=None, help="default 1,200 (abstract), 600 with more passages")
    ap.add_argument("--units-per-add", type=int, default=10, help="units completed by one Committer.add (one commit_units)")
    ap.add_argument("--no-single-unit-pass", action="store_true", help="skip the pass with one unit completed per add")
    ap.add_argument("--messages-per-add", type=int, default=16, help="written rows per add before a group's closing add")
    ap.add_argument("--batch-size", type=int, default=8, help="passages per micro-batch")
    ap.add_argument("--rows-per-call", type=int, default=128, help="passages per model-actor call (one entities file per unit per call)")
    ap.add_argument("--workers", type=int, default=2, help="writer threads (parse tasks and model actors)")
    ap.add_argument("--peer-units", type=int, default=20, help="units' worth of documents through the pre-Delta driver (0: skip it)")
    ap.add_argument("--peer-docs-per-input", type=int, default=None, help="documents per pre-Delta input (default: the unit; PMC: 1)")
    ap.add_argument("--peer-rows-per-add", type=int, default=None,
                    help="passage rows per add for the pre-Delta driver (default: messages-per-add x rows-per-call, the same model output)")
    ap.add_argument("--peer-rev", default=PEER_REV, help="git revision holding the pre-Delta driver")
    ap.add_argument("--root", default=None, help="output folder (default: a temporary one, removed)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "bench_commit.json"))
    args = ap.parse_args(argv)
    if args.peer_rows_per_add is None:
        args.peer_rows_per_add = args.messages_per_add * args.rows_per_call
    epd = args.entities_per_doc if args.entities_per_doc is not None else 6 * args.passages_per_doc
    chars = args.chars_per_passage or (1200 if args.passages_per_doc == 2 else 600)
    shape = Shape(args.source, args.abstracts_per_unit, args.passages_per_doc, epd, chars)

    if args.peer_units > 0:
        check_peer_available(args.peer_rev)
    base = args.root or tempfile.mkdtemp(prefix="bench_commit_")
    results: dict = {}
    try:
        passes = [("delta", max(1, args.units_per_add))]
        if not args.no_single_unit_pass and args.units_per_add != 1:
            passes.append(("delta_one_unit_per_add", 1))
        for name, k in passes:
            root = os.path.join(base, name)
            shutil.rmtree(root, ignore_errors=True)
            results[name] = delta_pass(root, shape, args.units, k, args)
            r = results[name]
            print(f"{name}: {r['driver_capacity_docs_per_s']:,} docs/s ({r['driver_s_per_timed_call_after_first']['mean'] * 1000:.1f} ms "
                  f"per group of {k} unit(s); workers wrote {r['files']} files in {r['workers_write_s']} s)", flush=True)
        if args.peer_units > 0:
            dpi = args.peer_docs_per_input or shape.docs
            results["pre_delta"] = peer_pass(os.path.join(base, "pre_delta"), shape, args.peer_units * shape.docs, dpi, args)
            print(f"pre_delta: {results['pre_delta']['driver_capacity_docs_per_s']:,} docs/s", flush=True)
            for name, _ in passes:
                results[f"ratio_{name}_vs_pre_delta"] = round(results[name]["driver_capacity_docs_per_s"] / results["pre_delta"]["driver_capacity_docs_per_s"], 2)
    finally:
        if args.root is None:
            shutil.rmtree(base, ignore_errors=True)

    import deltalake

    doc = "abstracts" if shape.source == "pubmed" else "articles"
    report = {
        "benchmark": "bench_commit",
        "command": "python scripts/bench_commit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_head": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "deltalake": deltalake.__version__,
                    "pyarrow": pa.__version__, "platform": platform.platform(), "storage": "local disk"},
        "workload": {
            "source": shape.source,
            "documents_are": doc,
            "units": args.units,
            "docs_per_unit": shape.docs,
            "passages_per_doc": shape.ppd,
            "entities_per_doc": shape.epd,
            "chars_per_passage": shape.chars,
            "label_sets": 1,
            "batch_size": args.batch_size,
            "rows_per_call": args.rows_per_call,
            "messages_per_add": args.messages_per_add,
            "units_per_add": args.units_per_add,
            "writer_threads": args.workers,
            "peer_units": args.peer_units,
            "peer_docs_per_input": args.peer_docs_per_input or shape.docs,
            "peer_rows_per_add": args.peer_rows_per_add,
        },
        "method": (
            "delta: worker threads write each unit's parse files and one entities file per simulated model call with "
            "write_data_file (timed apart); then biogliner.pipeline.stages.commit.Committer.add is fed the WRITTEN rows and end rows "
            "the parse tasks and model actors send, units_per_add units completing per closing add; timed: every add call "
            "(intake + commit_units). pre_delta: the Committer and manifest Store of git revision peer_rev, loaded from git "
            "into a temporary package, fed the same blocks of model output as ANNOTATED passage rows (peer_rows_per_add per add); it writes the entities and PUTs "
            "the manifest entry per input. Capacity = documents per timed call / mean seconds per timed call after the "
            "first (which creates the tables). Tables start empty; one process, local disk, no Ray."
        ),
        "units_of_capacity": f"{doc} per second (driver_capacity_docs_per_s)",
        "results": results,
        "reference": "issue: goal >= 1,000,000 abstracts/s of driver commit capacity; the pre-Delta driver was measured near 70,000 abstracts/s (results.pre_delta is that driver, measured in this run)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
