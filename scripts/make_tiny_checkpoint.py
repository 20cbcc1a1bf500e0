#!/usr/bin/env python
"""Write a tiny random GLiNER bi-encoder checkpoint (GLiNER's on-disk format) to OUT_DIR.

    python scripts/make_tiny_checkpoint.py OUT_DIR [--seed 0] [--text-encoder deberta|bert] [--hidden-size D]

The weights are random: the entities it finds are meaningless. Use it for tests and smoke runs only.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text-encoder", choices=("deberta", "bert"), default="deberta")
    p.add_argument("--hidden-size", type=int, default=None, help="GLiNER hidden size D (default: text encoder width)")
    p.add_argument("--text-width", type=int, default=32)
    p.add_argument("--text-layers", type=int, default=2)
    p.add_argument("--text-heads", type=int, default=2)
    p.add_argument("--labels-width", type=int, default=24)
    p.add_argument("--labels-layers", type=int, default=2)
    args = p.parse_args(argv)

    from biogliner.testing.random_checkpoint import build_random_checkpoint

    out = build_random_checkpoint(
        args.out_dir,
        seed=args.seed,
        text_encoder=args.text_encoder,
        hidden_size=args.hidden_size,
        text_width=args.text_width,
        text_layers=args.text_layers,
        text_heads=args.text_heads,
        labels_width=args.labels_width,
        labels_layers=args.labels_layers,
    )
    print(f"WARNING: {out} holds RANDOM weights: the entities it finds are meaningless (tests/smoke runs only).", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
