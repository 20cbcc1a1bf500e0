"""Ray job entrypoint: the nightly incremental run on the running cluster.

    ray job submit --working-dir . -- python jobs/nightly.py \\
        --pubmed-updates s3://bucket/pubmed/updatefiles/ --output s3://bucket/biogliner --labels biomed

Connects to the cluster (``RAY_ADDRESS``, set by ``ray job submit``, else ``address="auto"``);
``--help`` works without Ray. Same options as ``biogliner nightly``; exit status 75 when another
nightly holds the lock.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from biogliner.cli.nightly import EPILOG, add_arguments, run_from_args

    parser = argparse.ArgumentParser(
        prog="jobs/nightly.py",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(progress="log")
    return run_from_args(parser.parse_args(argv), connect="cluster")


if __name__ == "__main__":
    sys.exit(main())
