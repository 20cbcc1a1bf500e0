"""Benchmark: maintained current tables (biogliner.store.current) vs read-time views (views.py).

Generates a synthetic PubMed store: ``--per-input`` documents per input file (pubmed26n0001,
...), 2 passages and ``--entities-per-doc`` entities per document (one label set), and in every
input after the first ``--revised`` (2 %) of its records revise a random earlier PMID and
``--deleted`` (0.1 %) DeleteCitations name a random earlier PMID. The history is committed to
Delta tables through biogliner.store.delta (DeltaStore.commit_unit), then the current tables are
built through the API (:func:`biogliner.store.current.apply_units`, ``--batch`` inputs per
application; the last input is applied alone, like a nightly update file).

Then three queries, each in a fresh subprocess (wall seconds of the query, peak RSS of the
process), with DuckDB (2 threads) over the Delta file lists (``read_parquet([...],
hive_partitioning=true)``):

  count      SELECT count(*) FROM current_entities
  labels     SELECT label, count(*) FROM current_entities GROUP BY label
  join_year  current_entities JOIN current_documents ON the follow keys, count(*) GROUP BY year

and the same three through the read-time views (views.register over the history files: the
peer), quoted as ratios. Results are merged into ``--out`` (one entry per --documents).

    .venv/bin/python scripts/bench_current.py                      # 300k documents
    .venv/bin/python scripts/bench_current.py --documents 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from biogliner.schema import DELETIONS, DOCUMENTS, ENTITIES, PASSAGES  # noqa: E402

LABELS = np.array(["gene", "disease", "chemical", "species"])
LABEL_SET = "bio@1"

QUERIES = {
    "count": "SELECT count(*) AS n FROM current_entities",
    "labels": "SELECT label, count(*) AS n FROM current_entities GROUP BY label ORDER BY label",
    "join_year": (
        "SELECT d.year, count(*) AS n FROM current_entities e JOIN current_documents d "
        "ON e.source = d.source AND e.doc_id = d.doc_id AND e.input = d.input AND e.position = d.position "
        "GROUP BY d.year ORDER BY d.year"
    ),
}


def gen_input(i: int, n: int, prev: np.ndarray, next_pmid: int, args, rng: np.random.Generator):
    """Tables of input ``i`` and the PMIDs it introduces."""
    name = f"pubmed26n{i + 1:04d}"
    run = f"run-{name}"
    n_rev = int(round(n * args.revised)) if i and len(prev) else 0
    n_del = int(round(n * args.deleted)) if i and len(prev) else 0
    new = np.arange(next_pmid, next_pmid + n - n_rev, dtype=np.int64)
    rev = rng.choice(prev, size=min(n_rev, len(prev)), replace=False) if n_rev else np.empty(0, np.int64)
    pmids = np.concatenate([new, rev])
    n = len(pmids)
    pos = np.arange(n, dtype=np.int64)
    doc_id = pc.binary_join_element_wise("pubmed:", pa.array(pmids).cast(pa.string()), "")
    docs = pa.table(
        {
            "doc_id": doc_id,
            "pmid": pa.array(pmids),
            "version": pa.array(np.ones(n, np.int32)),
            "pmcid": pa.nulls(n, pa.string()),
            "doi": pa.nulls(n, pa.string()),
            "status": pa.array(np.full(n, "MEDLINE")),
            "language": pa.array(np.full(n, "eng")),
            "year": pa.array((1990 + pmids % 35).astype(np.int32)),
            "journal": pa.array(np.char.add("J", (pmids % 500).astype(str))),
            "license": pa.nulls(n, pa.string()),
            "source_file": pa.array(np.full(n, f"{name}.xml.gz")),
            "position": pa.array(pos),
            "n_passages": pa.array(np.full(n, 2, np.int32)),
            "run_id": pa.array(np.full(n, run)),
        },
        schema=DOCUMENTS,
    )
    p_idx = np.repeat(np.arange(n), 2)
    p_pi = np.tile(np.array([0, 1], np.int32), n)
    texts = np.where(p_pi == 0, "A title about gene X in disease Y", "An abstract " + "with some words " * 12)
    passages = pa.table(
        {
            "doc_id": doc_id.take(pa.array(p_idx)),
            "version": pa.array(np.ones(2 * n, np.int32)),
            "position": pa.array(pos[p_idx]),
            "passage_index": pa.array(p_pi),
            "section": pa.array(np.where(p_pi == 0, "title", "abstract")),
            "text": pa.array(texts, pa.large_string()),
            "run_id": pa.array(np.full(2 * n, run)),
        },
        schema=PASSAGES,
    )
    k = args.entities_per_doc
    e_idx = np.repeat(np.arange(n), k)
    e_k = np.tile(np.arange(k, dtype=np.int32), n)
    ne = n * k
    entities = pa.table(
        {
            "doc_id": doc_id.take(pa.array(e_idx)),
            "version": pa.array(np.ones(ne, np.int32)),
            "position": pa.array(pos[e_idx]),
            "passage_index": pa.array((e_k * 2 // k).astype(np.int32)),
            "start": pa.array(e_k * 10),
            "end": pa.array(e_k * 10 + 5),
            "text": pa.array(np.char.add("m", rng.integers(0, 200, ne).astype(str))),
            "label": pa.array(LABELS[rng.integers(0, len(LABELS), ne)]),
            "score": pa.array(rng.random(ne, dtype=np.float32)),
            "label_set": pa.array(np.full(ne, LABEL_SET)),
            "model": pa.array(np.full(ne, "fp-bench")),
            "run_id": pa.array(np.full(ne, run)),
        },
        schema=ENTITIES,
    )
    dels = rng.choice(prev, size=n_del, replace=False) if n_del else np.empty(0, np.int64)
    deletions = pa.table(
        {
            "doc_id": pc.binary_join_element_wise("pubmed:", pa.array(dels).cast(pa.string()), ""),
            "pmid": pa.array(dels),
            "version": pa.nulls(len(dels), pa.int32()),
            "source_file": pa.array(np.full(len(dels), f"{name}.xml.gz")),
            "position": pa.array(np.arange(len(dels), dtype=np.int64)),
            "run_id": pa.array(np.full(len(dels), run)),
        },
        schema=DELETIONS,
    )
    return name, run, {"documents": docs, "passages": passages, "entities": entities, "deletions": deletions}, new


def build(work: Path, args) -> dict:
    from biogliner.store import current as cur
    from biogliner.store.delta import DeltaStore, write_data_file

    root = str(work / "store")
    store = DeltaStore(root)
    rng = np.random.default_rng(args.seed)
    n_inputs = max(1, -(-args.documents // args.per_input))
    prev = np.empty(0, np.int64)
    next_pmid = 1_000_000
    pending: list = []
    t_gen = t_commit = 0.0
    applies = []
    entities_history = 0

    def flush():
        if pending:
            r = cur.apply_units(root, pending, history_root=root)
            applies.append({"units": len(pending), "entering": r["entering"], "leaving": r["leaving"],
                            "seconds": r["timings"]["total_s"], "timings": r["timings"]})
            print(f"  applied {len(pending)} unit(s) in {r['timings']['total_s']:.1f} s "
                  f"(entering {r['entering']}, leaving {r['leaving']})", flush=True)
            pending.clear()

    for i in range(n_inputs):
        n = min(args.per_input, args.documents - i * args.per_input)
        t = time.perf_counter()
        name, run, tabs, new = gen_input(i, n, prev, next_pmid, args, rng)
        prev = np.concatenate([prev, new])
        next_pmid += len(new)
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        files = [write_data_file(root, tname, tab, {"source": "pubmed", "input": name})
                 for tname, tab in tabs.items() if tab.num_rows]
        store.commit_unit(f"pubmed/{name}", 0, files, {"run_id": run, "label_set": LABEL_SET})
        t_commit += time.perf_counter() - t
        entities_history += tabs["entities"].num_rows
        if i == n_inputs - 1 and n_inputs > 1:
            flush()  # the last input alone, as a nightly update
        pending.append(cur.CurrentUnit("pubmed", name, documents=tabs["documents"], passages=tabs["passages"],
                                       deletions=tabs["deletions"], entities=tabs["entities"],
                                       label_sets=(cur.LabelSetCommit(LABEL_SET, run, 0),)))
        if len(pending) >= args.batch:
            flush()
    flush()
    return {
        "root": root,
        "inputs": n_inputs,
        "entities_history": entities_history,
        "generate_s": round(t_gen, 2),
        "history_commit_s": round(t_commit, 2),
        "apply_s": round(sum(a["seconds"] for a in applies), 2),
        "applies": applies,
    }


TABLE_GROUPS = {
    "history": ("documents", "passages", "entities", "deletions"),
    "current": ("current_documents", "current_passages", "current_entities"),
    "state": ("current_state", "current_label_sets", "current_pmc_events"),
}
TABLE_GROUPS["all"] = TABLE_GROUPS["history"] + TABLE_GROUPS["current"] + TABLE_GROUPS["state"]


def live_bytes(path: Path) -> int | None:
    """Bytes of the files the latest version of the Delta table at ``path`` names."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        actions = DeltaTable(str(path)).get_add_actions(flatten=True)
    except TableNotFoundError:
        return None
    actions = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    return int(pc.sum(actions.column("size_bytes")).as_py() or 0)


def _local(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def relation_specs(root: str) -> dict:
    """What a query child needs: file lists of the current tables, and the views' snapshot parts."""
    from biogliner.store import current as cur
    from biogliner.store import views
    from biogliner.store.delta import DeltaStore

    store = DeltaStore(root)
    history = {t: [_local(u) for u in store.file_uris(t)] for t in views.BASE_VIEWS}
    pubmed = sorted({Path(f).parent.name.split("=", 1)[1] for f in history["documents"]}, key=views.file_rank_key)
    return {
        "current": {t: [_local(u) for u in cur.file_uris(root, t)] for t in cur.CURRENT_TABLES},
        "history": history,
        "input_order": [["pubmed", n, r] for r, n in enumerate(pubmed)],
        "label_sets": [["pubmed", n, LABEL_SET, f"run-{n}"] for n in pubmed],
        "root": root,
    }


def child(spec_path: str, mode: str, query: str) -> None:
    """Run one query in this (fresh) process; print seconds, peak RSS and the result."""
    import duckdb

    spec = json.loads(Path(spec_path).read_text())
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET preserve_insertion_order = false")
    if mode == "current":
        for t, files in spec["current"].items():
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = true, "
                        "hive_types = {'source': 'VARCHAR', 'input': 'VARCHAR'})")
    else:
        from biogliner.store import views

        snap = views.Snapshot(
            root_url=spec["root"], local=True, files=spec["history"],
            input_order=tuple(tuple(r) for r in spec["input_order"]),
            current_label_sets=tuple(tuple(r) for r in spec["label_sets"]),
        )
        views.register(con, None, snap)
    before_mb = _proc_status_mb("VmRSS")
    t = time.perf_counter()
    rows = con.execute(QUERIES[query]).fetchall()
    s = time.perf_counter() - t
    print(json.dumps({"seconds": round(s, 3), "peak_rss_mb": round(_proc_status_mb("VmHWM"), 1),
                      "rss_before_query_mb": round(before_mb, 1), "rows": [list(r) for r in rows]}))


def _proc_status_mb(key: str) -> float:
    """VmHWM (peak RSS of this process image) or VmRSS from /proc/self/status, in MiB. Not
    getrusage: Linux keeps ru_maxrss across fork+exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def run_query(spec_path: Path, mode: str, query: str, timeout: int) -> dict:
    try:
        p = subprocess.run([sys.executable, __file__, "--child", str(spec_path), mode, query],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    if p.returncode:
        return {"error": (p.stderr or p.stdout)[-800:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=300_000, help="documents in all inputs (default 300k)")
    ap.add_argument("--per-input", type=int, default=30_000)
    ap.add_argument("--entities-per-doc", type=int, default=12)
    ap.add_argument("--revised", type=float, default=0.02)
    ap.add_argument("--deleted", type=float, default=0.001)
    ap.add_argument("--batch", type=int, default=10, help="inputs per apply_units call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--query-timeout", type=int, default=900)
    ap.add_argument("--no-peer", action="store_true", help="skip the read-time views")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "bench_current.json"))
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_current_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"building {args.documents} documents in {work}", flush=True)
    b = build(work, args)
    spec = relation_specs(b["root"])
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    queries = {}
    for q in QUERIES:
        res = {"current": run_query(spec_path, "current", q, args.query_timeout)}
        if not args.no_peer:
            res["views"] = run_query(spec_path, "views", q, args.query_timeout)
            c, v = res["current"], res["views"]
            if "seconds" in c and "seconds" in v:
                res["same_result"] = c["rows"] == v["rows"]
                res["views_over_current_seconds"] = round(v["seconds"] / max(c["seconds"], 1e-3), 1)
                res["views_over_current_rss"] = round(v["peak_rss_mb"] / max(c["peak_rss_mb"], 1e-3), 1)
        for r in res.values():
            if isinstance(r, dict) and "rows" in r and len(r["rows"]) > 8:
                r["rows"] = r["rows"][:8] + [["..."]]
        queries[q] = res
        print(q, json.dumps(res), flush=True)

    def size(p: Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())

    store = Path(b["root"])
    entry = {
        "documents": args.documents,
        "per_input": args.per_input,
        "entities_per_doc": args.entities_per_doc,
        "revised": args.revised,
        "deleted": args.deleted,
        "batch": args.batch,
        "inputs": b["inputs"],
        "entities_history": b["entities_history"],
        "entities_current": (queries["count"]["current"].get("rows") or [[None]])[0][0],
        # live = files named by the latest Delta version; on disk also holds files removed by
        # later versions (rewritten by deletes/merges) until a vacuum
        "bytes_live": {t: live_bytes(store / t) for t in TABLE_GROUPS["all"]},
        "bytes_on_disk": {g: sum(size(store / t) for t in ts if (store / t).exists()) for g, ts in TABLE_GROUPS.items() if g != "all"},
        "build": {k: b[k] for k in ("generate_s", "history_commit_s", "apply_s")},
        "applies": b["applies"],
        "queries": queries,
        "total_s": round(time.perf_counter() - t0, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": "python scripts/bench_current.py " + " ".join(sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    runs = [r for r in data.get("runs", []) if r.get("documents") != args.documents]
    data = {
        "what": "maintained current_* Delta tables (biogliner.store.current) vs read-time views (views.py), "
                "DuckDB 2 threads over Delta file lists; one subprocess per query: seconds of the query, peak RSS (VmHWM) of the process",
        "runs": sorted(runs + [entry], key=lambda r: r["documents"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({entry['total_s']} s)")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
