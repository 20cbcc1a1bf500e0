"""The ``biogliner`` command line.

Each subcommand lives in its own module ``biogliner/cli/<name>.py`` exposing
``register(subparsers) -> argparse.ArgumentParser`` (cheap: no heavy imports at module level)
and setting ``func`` via ``parser.set_defaults(func=run)`` where ``run(args) -> int`` is the exit
status. Only this package and ``jobs/`` parse argv.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from biogliner import __version__

SUBCOMMANDS = ("parse", "predict", "labels", "model", "annotate", "nightly", "sql", "store", "eval", "finetune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biogliner", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"biogliner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"biogliner.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"biogliner.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
