"""``biogliner model``: checkpoint utilities.

``biogliner model mirror SRC DEST`` copies a checkpoint (hub id, local directory or fsspec URL)
into a self-contained directory or ``s3://`` prefix: its files, the labels tokenizer under
``labels_tokenizer/`` (published GLiNER-biomed checkpoints have none: it is found by the
``labels_encoder`` id in the local Hugging Face cache or on the hub, or named with
``--labels-tokenizer``) and a ``biogliner-manifest.json`` of file hashes. The copy is loaded with
the cache and hub switched off before it is published (atomically). Exit status 0 on success,
2 when the checkpoint or its labels tokenizer cannot be found or does not load.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)

LABELS_TOKENIZER_ENV = "BIOGLINER_LABELS_TOKENIZER"  # read by biogliner.model.labels_tokenizer


class _LabelsTokenizerAction(argparse.Action):
    """Stores the value and exports it as $BIOGLINER_LABELS_TOKENIZER, so that every model load of
    this run (predict, eval, labels embed, local Ray workers started afterwards) uses it."""

    def __call__(self, parser, namespace, values, option_string=None):
        import os

        setattr(namespace, self.dest, values)
        os.environ[LABELS_TOKENIZER_ENV] = values


def add_labels_tokenizer_option(parser: argparse.ArgumentParser) -> None:
    """``--labels-tokenizer``: declared here once, used by ``model mirror`` and the shared model options."""
    parser.add_argument(
        "--labels-tokenizer",
        default=None,
        metavar="PATH",
        action=_LabelsTokenizerAction,
        help="labels tokenizer (directory, URL or hub id) for checkpoints without labels_tokenizer/ "
        f"(default: ${LABELS_TOKENIZER_ENV}, else the labels_encoder id via the local Hugging Face cache, then the hub)",
    )


def add_backend_option(parser) -> None:
    """``--backend``: declared once, on :class:`biogliner.pipeline.config.AnnotateConfig`, and used by
    ``predict``, ``eval``, ``annotate`` and ``nightly`` (and the Ray jobs)."""
    from biogliner.pipeline.args import add_option
    from biogliner.pipeline.config import cli_fields

    add_option(parser, next(f for f in cli_fields() if f.name == "backend"))


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("model", help="checkpoint utilities (mirror)", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    m = sub.add_parser(
        "mirror",
        help="copy a checkpoint into a self-contained, verified directory or s3:// prefix",
        description=__doc__.split("\n\n")[1],
        epilog="Examples:\n"
        "  biogliner model mirror Ihor/gliner-biomed-bi-small-v1.0 s3://bucket/models/gliner-biomed-bi-small-v1.0\n"
        "  biogliner model mirror ckpt/ /models/bi-small --labels-tokenizer /models/all-MiniLM-L6-v2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("src", metavar="SRC", help="checkpoint: hub id, local directory or fsspec URL")
    m.add_argument("dest", metavar="DEST", help="target: local directory (must not exist) or fsspec URL prefix")
    m.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of SRC")
    add_labels_tokenizer_option(m)
    m.add_argument("--cache-dir", default=None, help="local cache for SRC fetched from the hub or a URL")
    m.add_argument("--storage-options", default=None, metavar="JSON", help="fsspec storage options (JSON) for SRC and DEST URLs")
    m.add_argument("--overwrite", action="store_true", help="replace an existing mirror at DEST")
    m.set_defaults(func=run_mirror)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run_mirror(args) -> int:
    from biogliner.model.errors import CheckpointError
    from biogliner.model.mirror import mirror

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        opts = json.loads(args.storage_options) if args.storage_options else None
        result = mirror(
            args.src,
            args.dest,
            revision=args.revision,
            labels_tokenizer=args.labels_tokenizer,
            cache_dir=args.cache_dir,
            storage_options=opts,
            dest_storage_options=opts,
            overwrite=args.overwrite,
        )
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"biogliner model mirror: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"dest": result.dest, "fingerprint": result.fingerprint, "files": result.files,
                      "labels_tokenizer_from": result.labels_tokenizer_from}))
    return 0
