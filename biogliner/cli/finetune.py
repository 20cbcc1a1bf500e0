"""``biogliner finetune``: few-shot fine-tuning of a bi-encoder on annotated data, on Ray Train.

Reads training and dev gold data in any format ``biogliner eval`` reads, chunks texts as at
inference (nothing truncated), trains with gliner's span loss through the folded span head on N
Ray Train workers (DDP), checkpoints every epoch (local path or s3://; a rerun with the same
--checkpoint-dir and --run-name resumes), stops early on dev strict F1, and writes the best epoch's
model in the published GLiNER layout to --out with finetune_report.json. See docs/finetune.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

logger = logging.getLogger(__name__)


def register(subparsers) -> argparse.ArgumentParser:
    from biogliner.train.config import FinetuneConfig

    d = FinetuneConfig.__dataclass_fields__
    p = subparsers.add_parser(
        "finetune",
        help="few-shot fine-tuning on annotated data (Ray Train)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="Example:\n  biogliner finetune --model Ihor/gliner-biomed-bi-small-v1.0 --train train.pubtator "
        "--dev dev.pubtator --label-map map.yaml --out s3://bucket/models/my-ft --num-workers 2 --use-gpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="base checkpoint: local dir, s3:// URL or hub id")
    p.add_argument("--train", required=True, metavar="DATA", help="training gold data (file/URL or hub:NAME)")
    p.add_argument("--dev", required=True, metavar="DATA", help="dev gold data for early stopping")
    p.add_argument("--format", default=None, choices=("bioc-xml", "bioc-json", "pubtator", "conll", "jsonl", "gliner", "hub"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels", metavar="SET", help="label set (YAML or built-in name) naming the gold types")
    g.add_argument("--label-map", metavar="MAP.yaml", help="YAML 'gold type: prompt' (null: not trained)")
    p.add_argument("--out", required=True, metavar="DIR_OR_URL", help="where the fine-tuned checkpoint goes")
    for name, typ, hlp in (
        ("epochs", int, "maximum epochs"),
        ("lr", float, "learning rate of the span head, prompt layer and projections"),
        ("encoder-lr", float, "learning rate of the text and labels backbones"),
        ("batch-size", int, "chunks per worker per step"),
        ("alpha", float, "focal loss alpha (<0: off)"),
        ("gamma", float, "focal loss gamma"),
        ("label-smoothing", float, "gliner's label_smoothing (acts as its prob_margin, see biogliner.train.loss)"),
        ("negatives", float, "probability of keeping a negative term (with --masking)"),
        ("dropout", float, "dropout of the span/prompt MLPs (default: the checkpoint's)"),
        ("threshold", float, "dev decoding threshold"),
        ("patience", int, "early stopping: epochs without a better dev strict F1"),
        ("seed", int, "random seed"),
        ("num-workers", int, "Ray Train workers (DDP replicas)"),
        ("max-failures", int, "worker-group restarts from the last checkpoint"),
    ):
        default = d[name.replace("-", "_")].default
        p.add_argument(f"--{name}", type=typ, default=default, help=f"{hlp} (default: {default})")
    p.add_argument("--loss", choices=("focal", "bce"), default=d["loss"].default)
    p.add_argument("--masking", choices=("none", "global", "span"), default=d["masking"].default)
    p.add_argument("--reduction", choices=("sum", "mean"), default=d["reduction"].default)
    p.add_argument("--freeze-text-encoder", action="store_true")
    p.add_argument("--freeze-labels-encoder", action="store_true")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR_OR_URL", help="Ray Train storage (default: <out>.ray)")
    p.add_argument("--run-name", default=d["run_name"].default, help="run name under --checkpoint-dir (same name: resume)")
    p.add_argument("--address", default=None, help="Ray address (default: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--progress", action="store_true", help="show progress: a bar over the run's steps on a terminal (epoch, loss, dev F1), else one line per epoch on stderr")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from biogliner.train.config import FinetuneConfig

    fields = FinetuneConfig.__dataclass_fields__
    try:
        cfg = FinetuneConfig(**{k: v for k, v in vars(args).items() if k in fields})
    except ValueError as exc:
        print(f"biogliner finetune: error: {exc}", file=sys.stderr)
        return 2
    problem = _out_problem(cfg.out)
    if problem:  # before Ray and training: hours of work must not end in a refused or mixed output
        print(f"biogliner finetune: error: {problem}", file=sys.stderr)
        return 2
    import ray

    from biogliner.train.trainer import run_finetune

    if not ray.is_initialized():
        address = args.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, log_to_driver=False) if address else ray.init(log_to_driver=False)
    try:
        report = run_finetune(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"biogliner finetune: error: {exc}", file=sys.stderr)
        return 2
    last = report["epochs"][-1] if report["epochs"] else {}
    print(json.dumps({"out": cfg.out, "best_epoch": report["best_epoch"], "best_dev_strict_f1": report["best_dev_strict_f1"],
                      "epochs_run": len(report["epochs"]), "last": last, "fingerprint": report["fingerprint"]}))
    return 0


def _out_problem(out: str) -> str | None:
    """Why ``--out`` cannot take the fine-tuned checkpoint, or None: it must not hold one already
    (files of another weight format would be left beside the new ones and one of the two loaded)."""
    from biogliner import io as bio

    fs, root = bio.filesystem(out)
    root = root.rstrip("/")
    if fs.exists(root) and (fs.isfile(root) or fs.ls(root)):
        return (f"--out {out} already exists and is not empty: choose a new --out, or delete it "
                "(rerunning with the same --checkpoint-dir and --run-name resumes the training, not the output)")
    return None
