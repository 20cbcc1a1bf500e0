"""Ray job entrypoint: few-shot fine-tuning on the running cluster (same options as ``biogliner finetune``).

    ray job submit --working-dir . -- python jobs/finetune.py --model M --train T --dev D --out s3://bucket/ft --use-gpu

Connects to the cluster (``RAY_ADDRESS``, set by ``ray job submit``); ``--help`` works without Ray.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from biogliner.cli import finetune

    sub = argparse.ArgumentParser(prog="jobs/finetune.py").add_subparsers()
    parser = finetune.register(sub)
    parser.prog = "jobs/finetune.py"
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
