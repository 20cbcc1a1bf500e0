"""``biogliner nightly``: annotate what PubMed/PMC published since the last run (locked, idempotent).

Lists the PubMed update files (and the baseline and PMC inputs when given), skips every input
already committed from the same bytes, and runs the annotation job on the rest: baseline, then
update files in ascending number, then PMC. One nightly at a time per output root: a lock object
(<output>/_locks/nightly.json: owner host/pid/run id, expiry) makes a second run exit at once
with status 75. A crashed run's lock expires after --lock-ttl seconds (at once when the crashed
process ran on this same host). Running it again when nothing is new does nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISMATCH, EXIT_LOCKED = 0, 1, 2, 3, 75

EPILOG = """examples:
  biogliner nightly --pubmed-updates s3://b/pubmed/updatefiles/ --output s3://b/biogliner --labels biomed
  biogliner nightly --pubmed-baseline s3://b/pubmed/baseline/ --pubmed-updates s3://b/pubmed/updatefiles/ \\
      --pmc 's3://b/pmc/PMC*' --output s3://b/biogliner --model s3://b/models/bi-small --labels sets/onco.yaml
  ray job submit --working-dir . -- python jobs/nightly.py --pubmed-updates ... --output s3://...

exit status: 0 done (or nothing new); 1 some input failed or did not complete (rerun to retry);
2 bad options, missing/unreachable model or input; 3 the output holds a requested label set made by
another model or label-set content (nothing was run; `biogliner annotate --reannotate` replaces
it); 75 another nightly holds the lock (its owner and expiry are printed)."""


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from biogliner.pipeline.args import add_arguments as add_annotate_arguments

    n = p.add_argument_group("what to process")
    n.add_argument("--pubmed-updates", action="append", default=[], metavar="URL",
                   help="PubMed updatefiles/ location (prefix or glob; repeatable)")
    n.add_argument("--pubmed-baseline", action="append", default=[], metavar="URL",
                   help="PubMed baseline/ location: its files not yet committed are processed first, and update files "
                        "of older production years are skipped as superseded")
    n.add_argument("--pmc", action="append", default=[], metavar="URL",
                   help="PMC inputs: per-version prefixes, globs or .nxml files (repeatable)")
    n.add_argument("--pmc-inventory", default=None, metavar="URL",
                   help="PMC S3 inventory of metadata/ keys: a manifest.json, or the folder of dated inventories "
                        "(the latest is used); each listed article version not yet committed is processed")
    n.add_argument("--pmc-root", default=None, metavar="URL",
                   help="where the PMC article folders are (default: the inventory's source bucket, s3://pmc-oa-opendata)")
    n.add_argument("--lock-ttl", type=float, default=900.0, metavar="S",
                   help="seconds a lock stays valid without a heartbeat (default 900; refreshed every TTL/3)")
    n.add_argument("--dry-run", action="store_true", help="print what would be processed, change nothing")
    add_annotate_arguments(p)
    p.set_defaults(output=None, inputs=None)
    for action in p._actions:  # nightly lists its own inputs: hide the job's --input
        if action.dest in ("inputs", "reannotate"):  # (re-annotating is `biogliner annotate --reannotate`)
            action.help = argparse.SUPPRESS
    return p


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "nightly",
        help="incremental run: annotate new PubMed update files / PMC inputs (locked, idempotent)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run_from_args(args: argparse.Namespace, *, connect: str) -> int:
    """Shared body of ``biogliner nightly`` and ``jobs/nightly.py``."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from biogliner.pipeline.args import config_from_args
    from biogliner.pipeline.launch import ray_connector
    from biogliner.pipeline.config import ConfigError
    from biogliner.pipeline.nightly import NightlyConfig, run_nightly
    from biogliner.store.lock import LockError, LockHeldError

    if args.inputs:
        print("biogliner nightly: use --pubmed-updates / --pubmed-baseline / --pmc, not --input", file=sys.stderr)
        return EXIT_USAGE
    if args.reannotate:
        print("biogliner nightly: --reannotate is for `biogliner annotate --input ...` (the inputs to replace)", file=sys.stderr)
        return EXIT_USAGE
    if not args.output:
        print("biogliner nightly: --output is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        cfg = NightlyConfig(
            annotate=config_from_args(args),
            pubmed_updates=tuple(args.pubmed_updates),
            pubmed_baseline=tuple(args.pubmed_baseline),
            pmc=tuple(args.pmc),
            pmc_inventory=args.pmc_inventory,
            pmc_root=args.pmc_root,
            lock_ttl_s=args.lock_ttl,
            dry_run=args.dry_run,
        )
    except (ConfigError, ValueError) as exc:
        print(f"biogliner nightly: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if connect == "cluster":  # a Ray job: refuse paths that cannot work there, before the lock
        from biogliner.pipeline.launch import job_path_problems

        problems = job_path_problems(cfg.annotate)
        for problem in problems:
            print(f"jobs/nightly.py: {problem}", file=sys.stderr)
        if problems:
            return EXIT_USAGE
    from biogliner.model import CheckpointError
    from biogliner.pipeline.plan import CommittedWithOtherModel

    try:
        result = run_nightly(cfg, ensure_ray=ray_connector(connect, logging.getLogger("biogliner.nightly")))
    except CommittedWithOtherModel as exc:
        print(f"biogliner nightly: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except LockHeldError as exc:
        print(f"biogliner nightly: another nightly is running: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except LockError as exc:
        print(f"biogliner nightly: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"biogliner nightly: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"nightly: {result.status}: {result.plan.describe()}")
    if result.summary is not None:
        print(result.summary.render())
    return EXIT_OK if result.ok else EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    return run_from_args(args, connect="local")
