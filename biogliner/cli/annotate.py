"""``biogliner annotate``: the Ray Data annotation job, on a local Ray (started when none is given)."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    from biogliner.pipeline.args import DESCRIPTION, EPILOG, add_arguments

    p = subparsers.add_parser(
        "annotate",
        help="annotate PubMed/PMC XML into Parquet tables (Ray Data job)",
        description=DESCRIPTION + "\n\nStarts a local Ray unless RAY_ADDRESS names a running cluster.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from biogliner.pipeline.launch import run_from_args

    return run_from_args(args, connect="local")
