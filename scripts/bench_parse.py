"""Benchmark: biogliner's PubMed reader vs ``pubmed_parser.parse_medline_xml``, side by side.

Builds a PubMed baseline-like shard (``PubmedArticleSet``, gzipped, default 30,000 records) by
repeating real records with fresh PMIDs: the legacy MEDLINE records of
``../shared/corpus/pubmed`` re-wrapped as ``PubmedArticle`` plus the modern ones, or, when that
corpus is absent, the hand-written records of the bundled sample corpus. Then, for ``--rounds``
rounds, runs each parser in its own fresh subprocess (alternating which goes first), timing the
parse only (imports excluded) and reading the subprocess's peak RSS (``VmHWM``). Reports the
best time of each, records/s, MB/s of uncompressed XML, peak RSS and the ratio, and writes JSON.

    python scripts/bench_parse.py                      # 30k records, 3 rounds
    python scripts/bench_parse.py --records 5000 --rounds 2 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_PUBMED = ROOT.parent / "shared" / "corpus" / "pubmed"
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
    '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
)


def _records_from(path: Path):
    from lxml import etree

    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    out = []
    for el in root:
        if el.tag == "PubmedArticle":
            out.append(el)
        elif el.tag == "MedlineCitation":  # legacy: wrap like a modern baseline record
            art = etree.Element("PubmedArticle")
            art.append(copy.deepcopy(el))
            pd = etree.SubElement(art, "PubmedData")
            ids = etree.SubElement(pd, "ArticleIdList")
            aid = etree.SubElement(ids, "ArticleId", IdType="pubmed")
            aid.text = el.findtext("PMID")
            out.append(art)
    return out


def template_records() -> tuple[list, str]:
    if SHARED_PUBMED.is_dir():
        files = sorted(p for p in SHARED_PUBMED.iterdir() if p.name.endswith((".xml", ".xml.gz")))
        source = "../shared/corpus/pubmed (real records, legacy ones re-wrapped as PubmedArticle)"
    else:
        sample = ROOT / "biogliner" / "data" / "sample" / "pubmed"
        files = sorted(sample.glob("*.xml.gz"))
        source = "biogliner/data/sample/pubmed (hand-written records)"
    recs = [r for f in files for r in _records_from(f)]
    return recs, source


def build_shard(path: Path, n: int) -> dict:
    from lxml import etree

    templates, source = template_records()
    parts = [HEAD.encode()]
    for i in range(n):
        rec = copy.deepcopy(templates[i % len(templates)])
        rec.find("MedlineCitation/PMID").text = str(50_000_000 + i)
        parts.append(etree.tostring(rec, encoding="utf-8") + b"\n")
    parts.append(b"</PubmedArticleSet>\n")
    xml = b"".join(parts)
    path.write_bytes(gzip.compress(xml, compresslevel=6, mtime=0))
    return {"records": n, "xml_bytes": len(xml), "gz_bytes": path.stat().st_size, "templates": len(templates), "source": source}


# --- workers (run in a fresh subprocess each) ------------------------------------------------


def _peak_rss_mb() -> float:
    """Peak RSS of this process: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which a child
    inherits from the parent that spawned it), falling back to ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(impl: str, path: str) -> dict:
    if impl == "biogliner":
        from biogliner.schema import Document
        from biogliner.sources import iter_events

        rss0 = _peak_rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        records = passages = chars = 0
        for ev in iter_events(path):
            if isinstance(ev, Document):
                records += 1
                passages += len(ev.passages)
                chars += sum(len(p.text) for p in ev.passages)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif impl == "pubmed_parser":
        import pubmed_parser

        rss0 = _peak_rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        records = passages = chars = 0
        for rec in pubmed_parser.parse_medline_xml(path):
            records += 1
            passages += bool(rec.get("title")) + bool(rec.get("abstract"))
            chars += len(rec.get("title") or "") + len(rec.get("abstract") or "")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        raise SystemExit(f"unknown implementation {impl}")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records": records,
        "passages": passages,
        "text_chars": chars,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_imports_mb": rss0,
    }


def _run_worker(impl: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", impl, str(path)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "bench_parse.json"))
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(*args.worker)))
        return 0

    import lxml.etree

    impls = ["biogliner", "pubmed_parser"]
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "pubmed99n0001.xml.gz"
        info = build_shard(shard, args.records)
        print(f"shard: {info}", file=sys.stderr)
        runs: dict[str, list[dict]] = {k: [] for k in impls}
        for r in range(args.rounds):
            order = impls if r % 2 == 0 else impls[::-1]
            for impl in order:
                res = _run_worker(impl, shard)
                runs[impl].append(res)
                print(f"round {r + 1} {impl}: {res['seconds']:.2f} s, {res['records']} records, peak RSS {res['peak_rss_mb']:.0f} MB", file=sys.stderr)
    results = {}
    for impl, rs in runs.items():
        best = min(rs, key=lambda x: x["seconds"])
        best_cpu = min(x["cpu_seconds"] for x in rs)
        results[impl] = {
            "best_seconds": round(best["seconds"], 3),
            "all_seconds": [round(x["seconds"], 3) for x in rs],
            "records": best["records"],
            "records_per_s": round(best["records"] / best["seconds"], 1),
            "xml_mb_per_s": round(info["xml_bytes"] / 1e6 / best["seconds"], 2),
            "best_cpu_seconds": round(best_cpu, 3),
            "records_per_cpu_s": round(best["records"] / best_cpu, 1),
            "xml_mb_per_cpu_s": round(info["xml_bytes"] / 1e6 / best_cpu, 2),
            "peak_rss_mb": round(max(x["peak_rss_mb"] for x in rs), 1),
            "rss_after_imports_mb": round(max(x["rss_after_imports_mb"] for x in rs), 1),
            "passages": best["passages"],
            "text_chars": best["text_chars"],
        }
    ratio = results["biogliner"]["records_per_s"] / results["pubmed_parser"]["records_per_s"]
    cpu_ratio = results["biogliner"]["records_per_cpu_s"] / results["pubmed_parser"]["records_per_cpu_s"]
    report = {
        "benchmark": "bench_parse",
        "command": "python scripts/bench_parse.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "lxml": lxml.etree.__version__, "platform": platform.platform()},
        "shard": info,
        "rounds": args.rounds,
        "method": "each parser in a fresh subprocess per round, alternating order; best wall time and best CPU time (process_time) of the rounds, parse only (imports excluded); CPU time is the robust figure on a shared machine; peak RSS = VmHWM of the subprocess (max over rounds), rss_after_imports = VmHWM before parsing",
        "results": results,
        "ratio_records_per_s_biogliner_vs_pubmed_parser": round(ratio, 2),
        "ratio_records_per_cpu_s_biogliner_vs_pubmed_parser": round(cpu_ratio, 2),
        "targets": {
            "records_per_s_ratio_min": 2.0,
            "peak_rss_mb_max": 300,
            "met": bool(min(ratio, cpu_ratio) >= 2.0 and results["biogliner"]["peak_rss_mb"] < 300),
        },
        "notes": "pubmed_parser extracts more fields (authors, MeSH, grants...) but loses text inside inline tags; "
        "biogliner extracts every passage losslessly, plus ids, dates, deletions.",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    keys = ("ratio_records_per_s_biogliner_vs_pubmed_parser", "ratio_records_per_cpu_s_biogliner_vs_pubmed_parser", "targets")
    print(json.dumps({k: report[k] for k in keys}), file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
