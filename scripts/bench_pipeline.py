#!/usr/bin/env python
"""Benchmark (not a test): how well the Ray Data job feeds the model, and the parse stage alone.

In ONE run, alternating:
- ``model``: ``BiEncoder.predict`` alone (same checkpoint, banks, batch size and torch threads as
  the model actor) on exactly the passages the job annotates, in the driver process;
- ``job``: the whole annotation job (``biogliner.pipeline.job.annotate``: plan, bank
  embedding, parse + tokenise tasks, the model actor, writes, commits) on the same documents, on
  a local Ray started once, each time into a fresh output root;
- ``job_2x``: the same job on twice the documents. ``N / (t(2N) - t(N))`` is the job's marginal
  throughput: fixed costs (bank embedding, actor start, model load) cancel out.
Ratios: job / model (whole job, startup included) and job marginal / model (steady state).

Also the parse stage alone (``parse_input``: read, build rows, write the four parse tables, no
tokenising) on a generated 30 k-record PubMed shard, next to the reader alone
(``iter_events``), both in this process.

The checkpoint is a random bi-encoder with a 2-layer, 256-wide DeBERTa text encoder (built with
``build_random_checkpoint``, cached under ``.cache/bench_pipeline``): big enough that the model
dominates like the real one does, small enough to run in minutes on 2 CPU cores. Random weights
find meaningless entities; the threshold (0.515) keeps a realistic few per passage.

    python scripts/bench_pipeline.py                  # ~10 min on 2 cores
    python scripts/bench_pipeline.py --docs 40 --parse-records 3000 --rounds 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_pipeline")


def build_checkpoint(workdir: Path, width: int, layers: int) -> Path:
    from biogliner.testing.random_checkpoint import build_random_checkpoint

    out = workdir / f"bi-{layers}x{width}"
    if not (out / "gliner_config.json").exists():
        build_random_checkpoint(out, seed=0, text_width=width, text_layers=layers, text_heads=4, hidden_size=width, vocab_size=2000)
    return out


def passages_of(url: str) -> tuple[int, list[str]]:
    from biogliner.schema import Document
    from biogliner.sources import iter_events

    docs, texts = 0, []
    for e in iter_events(url):
        if isinstance(e, Document):
            docs += 1
            texts.extend(p.text for p in e.passages if p.text.strip())
    return docs, texts


class ModelAlone:
    """``BiEncoder.predict`` in this process: loaded once, warmed up once on the same texts (the
    first passes over new shapes are slow on CPU: oneDNN primitive creation), then timed."""

    def __init__(self, ckpt: Path, label_set, texts: list[str], batch_size: int, threads: int):
        import torch

        from biogliner.model import BiEncoder

        torch.set_num_threads(threads)
        self.model = BiEncoder.load(str(ckpt), device="cpu")
        self.bank = self.model.embed_labels(label_set)
        self.texts, self.batch_size = texts, batch_size
        self.model.predict(texts, [self.bank], batch_size=batch_size)  # warm-up, not timed

    def rate(self, n_docs: int) -> float:
        t0 = time.perf_counter()
        out = self.model.predict(self.texts, [self.bank], batch_size=self.batch_size)
        dt = time.perf_counter() - t0
        assert len(out) == len(self.texts)
        return n_docs / dt


def time_job(shard_dir: Path, ckpt: Path, args, threads: int) -> tuple[float, float, dict]:
    from biogliner.pipeline.config import AnnotateConfig
    from biogliner.pipeline.job import annotate

    out = tempfile.mkdtemp(prefix="bench-out-", dir=args.workdir)
    cfg = AnnotateConfig(
        inputs=(str(shard_dir),),
        output=out,
        model=str(ckpt),
        threshold=args.threshold,
        batch_size=args.batch_size,
        model_threads=threads,
        progress="none",
    )
    t0 = time.perf_counter()
    summary = annotate(cfg)
    dt = time.perf_counter() - t0
    if not summary.ok:
        raise RuntimeError(f"job failed: {summary.render()}")
    return summary.documents, dt, summary.timings


def bench_parse(workdir: Path, n_records: int) -> dict:
    from biogliner.pipeline.stages.read import ParseParams, parse_input
    from biogliner.pipeline.plan import identify
    from biogliner.testing.synthetic import make_pubmed_shard
    from biogliner.sources import iter_events

    shard = workdir / f"parse-{n_records}" / "pubmed26n9000.xml.gz"
    shard.parent.mkdir(parents=True, exist_ok=True)
    if not shard.exists():
        shard.write_bytes(make_pubmed_shard(n_records, first_pmid=60_000_000))
    xml_bytes = _xml_size(shard)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_events(str(shard)))
    t_reader = time.perf_counter() - t0
    out = tempfile.mkdtemp(prefix="bench-parse-", dir=workdir)
    t0 = time.perf_counter()
    blocks = list(parse_input(identify(str(shard)), ParseParams(output=out, storage_options={}, run_id="bench", block_rows=512)))
    t_stage = time.perf_counter() - t0
    info = json.loads(blocks[-1].column("info")[0].as_py())
    assert info["counts"]["documents"] == n_records == n, (info["counts"], n)
    return {
        "records": n_records,
        "xml_mb": round(xml_bytes / 1e6, 1),
        "gz_mb": round(shard.stat().st_size / 1e6, 1),
        "reader_records_per_s": round(n_records / t_reader, 1),
        "parse_stage_records_per_s": round(n_records / t_stage, 1),
        "parse_stage_xml_mb_per_s": round(xml_bytes / 1e6 / t_stage, 2),
        "parse_stage_vs_reader": round(t_reader / t_stage, 3),
        "passages": info["counts"]["passages"],
        "blocks": len(blocks) - 1,
        "stage_timings": info["timings"],
        "peak_rss_mb_process": round(max(rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024, 1),
    }


def _xml_size(path: Path) -> int:
    import gzip

    n = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(chunk)
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=1000, help="documents of the job's input (the 2x job gets twice as many)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the model, alone and in the actor (1: robust on a shared 2-core box)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threshold", type=float, default=0.515)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--parse-records", type=int, default=30_000)
    p.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench_pipeline")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "bench_pipeline.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args.workdir.mkdir(parents=True, exist_ok=True)

    import ray

    from biogliner.labels import load_label_set
    from biogliner.pipeline.banks import resolve_label_sets
    from biogliner.testing.synthetic import make_pubmed_shard

    ckpt = build_checkpoint(args.workdir, args.width, args.layers)
    shards = {}
    for name, n in (("warm", 8), ("1x", args.docs), ("2x", 2 * args.docs)):
        d = args.workdir / f"in-{name}-{n}"
        d.mkdir(exist_ok=True)
        f = d / "pubmed26n9001.xml.gz"
        if not f.exists():
            f.write_bytes(make_pubmed_shard(n, first_pmid=70_000_000))
        shards[name] = d
    n_docs, texts = passages_of(str(shards["1x"] / "pubmed26n9001.xml.gz"))
    label_set = resolve_label_sets(("biomed",), args.threshold)[0].label_set
    assert load_label_set("biomed").id in label_set.id

    log.info("parse stage on a %d-record shard", args.parse_records)
    parse = bench_parse(args.workdir, args.parse_records)
    log.info("parse: %s", parse)

    ray.init(include_dashboard=False, log_to_driver=False)
    log.info("warm-up: a small job (worker processes, imports) and the model alone on the texts: not measured")
    time_job(shards["warm"], ckpt, args, args.threads)
    alone = ModelAlone(ckpt, label_set, texts, args.batch_size, args.threads)
    model_rates, job_rates, marginal_rates, job_runs = [], [], [], []
    for r in range(args.rounds):
        log.info("round %d: model alone on %d documents (%d passages)", r + 1, n_docs, len(texts))
        model_rates.append(alone.rate(n_docs))
        log.info("  model alone: %.2f documents/s", model_rates[-1])
        d1, t1, tim1 = time_job(shards["1x"], ckpt, args, args.threads)
        d2, t2, tim2 = time_job(shards["2x"], ckpt, args, args.threads)
        job_rates.append(d1 / t1)
        marginal_rates.append((d2 - d1) / (t2 - t1))
        job_runs.append({"docs": d1, "wall_s": round(t1, 2), "timings": tim1, "docs_2x": d2, "wall_2x_s": round(t2, 2), "timings_2x": tim2})
        log.info("  job: %.2f documents/s whole, %.2f marginal", job_rates[-1], marginal_rates[-1])
    ray.shutdown()

    med = statistics.median
    result = {
        "benchmark": "bench_pipeline",
        "command": "python scripts/bench_pipeline.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gpu": False},
        "checkpoint": {"text_layers": args.layers, "text_width": args.width, "random": True},
        "documents": n_docs,
        "passages": len(texts),
        "threshold": args.threshold,
        "batch_size": args.batch_size,
        "torch_threads": args.threads,
        "rounds": args.rounds,
        "documents_per_s": {
            "model_alone": {"median": round(med(model_rates), 3), "per_round": [round(x, 3) for x in model_rates]},
            "job_whole": {"median": round(med(job_rates), 3), "per_round": [round(x, 3) for x in job_rates]},
            "job_marginal": {"median": round(med(marginal_rates), 3), "per_round": [round(x, 3) for x in marginal_rates]},
        },
        "ratio_job_whole_vs_model": round(med(job_rates) / med(model_rates), 3),
        "ratio_job_marginal_vs_model": round(med(marginal_rates) / med(model_rates), 3),
        "target_ratio_cpu": 0.8,
        "job_runs": job_runs,
        "parse_stage": parse,
        "notes": "2 shared CPU cores; the job's model actor has num_cpus=1 but the same torch threads as the model alone; "
        "whole-job time includes plan, bank embedding on the driver, actor start and model load; marginal = N/(t(2N)-t(N)).",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("documents_per_s", "ratio_job_whole_vs_model", "ratio_job_marginal_vs_model")}, indent=1))
    print(json.dumps(parse, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
