"""Ray job entrypoint: annotate PubMed/PMC XML into Parquet tables on the running cluster.

    ray job submit --working-dir . -- python jobs/annotate.py --input 's3://bucket/pubmed/*.xml.gz' --output s3://bucket/out

Connects to the cluster (``RAY_ADDRESS``, set by ``ray job submit``, else ``address="auto"``);
``--help`` works without Ray. Same options as ``biogliner annotate``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from biogliner.pipeline.args import DESCRIPTION, EPILOG, add_arguments
    from biogliner.pipeline.launch import run_from_args

    parser = argparse.ArgumentParser(
        prog="jobs/annotate.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.set_defaults(progress="log")
    return run_from_args(parser.parse_args(argv), connect="cluster")


if __name__ == "__main__":
    sys.exit(main())
