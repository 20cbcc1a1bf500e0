"""``biogliner eval``: strict and relaxed span F1 of a checkpoint on annotated corpora.

Reads gold annotations (BioC XML/JSON, PubTator, CoNLL/BIO, JSONL spans, GLiNER JSON, or a
``datasets`` hub dataset), predicts with exactly the production path (``BiEncoder.predict``,
chunking included), and prints per-label, micro and macro precision/recall/F1 under strict
(exact span and type) and relaxed (overlap and same type, the GLiNER-biomed protocol) matching,
then a threshold sweep. ``--report FILE`` writes the same as JSON. See docs/evaluation.md.

Exit status: 0 on success (gold documents skipped for bad annotations are counted and reported),
2 on a usage or setup error (unreadable data, bad label set or map, checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers) -> argparse.ArgumentParser:
    from biogliner.cli.predict import add_model_options

    p = subparsers.add_parser(
        "eval",
        help="strict and relaxed P/R/F1 on annotated corpora (GLiNER-biomed protocol)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="Examples:\n"
        "  biogliner eval --model ckpt/ --data bc5cdr_test.pubtator --label-map bc5cdr.yaml --report r.json\n"
        "  biogliner eval --model Ihor/gliner-biomed-bi-small-v1.0 --data test.json --format gliner --nested "
        "--label-form verbatim --threshold 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    from biogliner.cli.model import add_backend_option

    add_backend_option(p)
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE_OR_DATASET",
        help="gold file/URL; a folder laid out as a hub Parquet conversion (<config>/<split>/*.parquet); or hub:NAME "
        "(e.g. bigbio/bc5cdr: read from its Parquet conversion)",
    )
    p.add_argument(
        "--format",
        choices=("bioc-xml", "bioc-json", "pubtator", "conll", "jsonl", "gliner", "parquet", "hub"),
        default=None,
        help="gold format (default: from the extension, then the content)",
    )
    p.add_argument(
        "--unit",
        choices=("passage", "document"),
        default="passage",
        help="BioC/PubTator/BigBio: evaluate each passage (default, as the pipeline predicts) or each whole document",
    )
    p.add_argument(
        "--dataset-config", default=None, metavar="NAME", help="hub dataset configuration (default for bigbio/X: X_bigbio_kb)"
    )
    p.add_argument("--split", default="test", help="hub dataset split (default: test)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument(
        "--labels", metavar="SET", help="label set (built-in name, YAML, or a bank's set) whose labels name the gold types"
    )
    labels.add_argument("--label-map", metavar="MAP.yaml", help="YAML 'gold type: prompt' (null excludes a type)")
    p.add_argument(
        "--label-form",
        choices=("natural", "verbatim"),
        default="natural",
        help="default prompts: the lower-cased natural form of each gold type (default) or the type verbatim",
    )
    p.add_argument(
        "--threshold",
        type=float,
        nargs="+",
        default=None,
        metavar="T",
        help="headline threshold (the first value); several values also set the sweep (default: the label set's "
        "thresholds, 0.5, and a sweep over 0.3..0.8)",
    )
    p.add_argument("--no-sweep", action="store_true", help="score the headline threshold only")
    p.add_argument("--nested", action="store_true", help="nested decoding (flat_ner=false), as the GLiNER-biomed evaluator")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="texts per encoder batch (default: 8)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N gold documents only")
    p.add_argument("--report", default=None, metavar="FILE", help="write the JSON report here")
    p.add_argument("--quiet", "-q", action="store_true", help="no table on stdout")
    p.set_defaults(func=run)
    return p


def _error(msg: str) -> int:
    print(f"biogliner eval: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def config_from_args(args):
    """The :class:`~biogliner.eval.runner.EvalConfig` of these options (raises ValueError)."""
    from biogliner.eval.runner import EvalConfig

    return EvalConfig(
        model=args.model or _default_model(),
        data=args.data,
        format=args.format,
        unit=args.unit,
        dataset_config=args.dataset_config,
        split=args.split,
        labels=args.labels,
        label_map=args.label_map,
        label_form=args.label_form,
        thresholds=tuple(args.threshold or ()),
        sweep=not args.no_sweep,
        nested=args.nested,
        batch_size=args.batch_size,
        limit=args.limit,
        revision=args.revision,
        device=args.device,
        precision=args.precision,
        cache_dir=args.cache_dir,
    )


def run(args) -> int:
    from biogliner.eval.gold import GoldFormatError
    from biogliner.eval.runner import format_report, load_corpus, make_plan, run_eval
    from biogliner.labels import LabelSetError
    from biogliner.model.errors import LabelBankError
    from biogliner.pipeline.config import backend_problem

    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        return _error(str(exc))
    problem = backend_problem(args.backend, cfg.device, cfg.precision)
    if problem:
        return _error(f"--{problem}")
    # Read the gold data and check the labels before loading the model: fail fast on bad input.
    try:
        corpus = load_corpus(cfg)
        plan = make_plan(cfg, corpus)
    except (GoldFormatError, LabelSetError, LabelBankError) as exc:
        return _error(str(exc))
    for skip in corpus.skipped[:20]:
        print(f"biogliner eval: warning: skipped {skip}", file=sys.stderr)
    if len(corpus.skipped) > 20:
        print(f"biogliner eval: warning: ... {len(corpus.skipped) - 20} more skipped documents", file=sys.stderr)
    if not corpus.docs:
        return _error(f"{cfg.data}: no usable gold documents ({len(corpus.skipped)} skipped)")

    from biogliner.model import CheckpointError

    try:
        report = run_eval(cfg, model=_load_model(cfg, args.backend), corpus=corpus, plan=plan)
    except (GoldFormatError, LabelSetError, CheckpointError, FileNotFoundError) as exc:
        return _error(str(exc))
    report["backend"] = args.backend  # the text encoder's runtime: scores differ by backend in the last bits
    if args.report:
        try:
            _write_report(args.report, report)
        except OSError as exc:
            return _error(f"{args.report}: cannot write the report: {exc}")
    if not args.quiet:
        print(format_report(report))
    return EXIT_OK


def _default_model() -> str:
    """The same default as every command (biogliner.cli.predict.default_model)."""
    from biogliner.cli.predict import default_model

    return default_model()


def _load_model(cfg, backend: str = "torch"):
    from biogliner.model import BiEncoder

    return BiEncoder.load(
        cfg.model, revision=cfg.revision, device=cfg.device, precision=cfg.precision, cache_dir=cfg.cache_dir, backend=backend
    )


def _write_report(url: str, report: dict) -> None:
    from biogliner import io as bio

    fs, path = bio.filesystem(url)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as fh:
        fh.write(json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
