"""Fetch a GLiNER bi-encoder checkpoint into a node-local directory, once per node.

Run at node/pod start (a KubeRay init container, a cluster-launcher setup command) so that every
Ray worker on the node loads the model from local disk and nothing downloads per actor:

    python /home/ray/biogliner/cluster/docker/fetch_model.py \
        --source Ihor/gliner-biomed-bi-small-v1.0 --dest /home/ray/models/gliner-biomed-bi-small-v1.0

``--source`` (or ``BIOGLINER_MODEL_SOURCE``) is one of
  * a Hugging Face hub id (``owner/name``), fetched with ``huggingface_hub.snapshot_download``;
  * an object-store mirror (``s3://bucket/models/gliner-biomed-bi-small-v1.0``; a custom endpoint
    comes from ``AWS_ENDPOINT_URL`` through ``biogliner.io``; credentials from the AWS chain);
  * a local directory (copied, so that the cache never aliases a read-only mount).

The copy is made by ``biogliner.model.mirror`` (the code behind ``biogliner model mirror``): the
checkpoint files plus its labels tokenizer under ``labels_tokenizer/`` (published GLiNER-biomed
checkpoints have none; it comes from ``--labels-tokenizer``/``BIOGLINER_LABELS_TOKENIZER``, the local
Hugging Face cache or the hub, by the ``labels_encoder`` id) and ``biogliner-manifest.json`` (file
hashes). It lands in a temporary sibling directory, is test-loaded on CPU with the Hugging Face cache
and hub switched off, and is renamed into place only once complete; a marker file is then added.
A crash mid-download never leaves a half checkpoint that looks usable, and a second run on the node
is a no-op. ``--no-verify`` copies the source as is (no labels tokenizer added, no test load).
Prints the local directory on stdout. No credentials are printed. Exit status 1 with a message
naming the source when the fetch fails or the result is not a loadable checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("biogliner.fetch_model")

DEFAULT_SOURCE = "Ihor/gliner-biomed-bi-small-v1.0"
DEFAULT_CACHE = "/home/ray/models"
MARKER = ".biogliner-fetch-complete"
MANIFEST = "biogliner-manifest.json"  # written by biogliner.model.mirror inside the published copy
CONFIG_FILE = "gliner_config.json"
# What a checkpoint directory holds (the same set biogliner.model fetches from the hub).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "labels_tokenizer/*"]


@dataclass(frozen=True)
class FetchConfig:
    source: str
    dest: Path
    revision: str | None = None
    storage_options: dict | None = None
    verify: bool = True  # mirror it with biogliner.model (labels tokenizer, manifest, test load)
    labels_tokenizer: str | None = None  # for checkpoints without labels_tokenizer/

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("empty model source")


def default_dest(source: str, cache: str | os.PathLike = DEFAULT_CACHE) -> Path:
    """``<cache>/<last path component of the source>``."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise ValueError(f"cannot derive a directory name from model source {source!r}")
    return Path(cache) / name


def source_kind(source: str) -> str:
    """``"url"`` for any ``scheme://`` source, ``"local"`` for an existing directory, else ``"hub"``."""
    if "://" in source:
        return "url"
    if Path(source).is_dir():
        return "local"
    parts = source.split("/")
    if len(parts) == 2 and all(parts):
        return "hub"
    raise ValueError(f"model source {source!r} is neither a URL, a local directory nor a hub id owner/name")


def _fetch_url(source: str, into: Path, storage_options: dict | None) -> int:
    from biogliner import io

    fs, root = io.filesystem(source, storage_options)
    root = root.rstrip("/")
    files = [p for p in fs.find(root) if not fs.isdir(p)]
    if not files:
        raise FileNotFoundError(f"no files under {source}")
    for path in files:
        rel = path[len(root) :].lstrip("/")
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(target))
    return len(files)


def _fetch_hub(source: str, into: Path, revision: str | None) -> int:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=source, revision=revision, local_dir=str(into), allow_patterns=HUB_PATTERNS)
    # snapshot_download keeps bookkeeping under local_dir/.cache: not part of the checkpoint.
    shutil.rmtree(into / ".cache", ignore_errors=True)
    return sum(1 for p in into.rglob("*") if p.is_file())


def fetch(cfg: FetchConfig) -> Path:
    """Materialise ``cfg.source`` at ``cfg.dest`` (atomically) and return ``cfg.dest``."""
    dest = cfg.dest
    if (dest / MARKER).is_file() or (dest / MANIFEST).is_file():
        logger.info("model already cached at %s", dest)
        return dest
    kind = source_kind(cfg.source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if cfg.verify:
        n = _mirror(cfg, kind)
    else:
        n = _copy_unverified(cfg, kind)
    (dest / MARKER).write_text(json.dumps({"source": cfg.source, "revision": cfg.revision, "files": n}) + "\n")
    logger.info("fetched %s (%d files) to %s", cfg.source, n, dest)
    return dest


def _mirror(cfg: FetchConfig, kind: str) -> int:
    from biogliner.model import CheckpointError
    from biogliner.model.mirror import mirror

    if kind == "local" and not (Path(cfg.source) / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{cfg.source} is not a GLiNER checkpoint: no {CONFIG_FILE} at its root")
    try:
        result = mirror(
            cfg.source,
            str(cfg.dest),
            revision=cfg.revision,
            labels_tokenizer=cfg.labels_tokenizer,
            storage_options=cfg.storage_options,
            overwrite=cfg.dest.exists(),  # a stale, unmarked leftover of an older layout
        )
    except CheckpointError as exc:
        raise ValueError(f"{cfg.source}: the fetched checkpoint does not load: {exc}") from exc
    return result.files


def _copy_unverified(cfg: FetchConfig, kind: str) -> int:
    dest = cfg.dest
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if kind == "url":
            n = _fetch_url(cfg.source, tmp, cfg.storage_options)
        elif kind == "local":
            shutil.copytree(cfg.source, tmp, dirs_exist_ok=True)
            n = sum(1 for p in tmp.rglob("*") if p.is_file())
        else:
            n = _fetch_hub(cfg.source, tmp, cfg.revision)
        if not (tmp / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{cfg.source} is not a GLiNER checkpoint: no {CONFIG_FILE} at its root")
        if dest.exists():  # a stale, unmarked leftover of an older layout
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fetch a GLiNER checkpoint into a node-local cache directory.")
    p.add_argument(
        "--source",
        default=os.environ.get("BIOGLINER_MODEL_SOURCE", DEFAULT_SOURCE),
        help="hub id, s3:// (or other fsspec) URL of a mirrored checkpoint dir, or a local dir "
        "(default: $BIOGLINER_MODEL_SOURCE or %(default)s)",
    )
    p.add_argument(
        "--dest",
        default=os.environ.get("BIOGLINER_MODEL_DIR"),
        help="target directory (default: $BIOGLINER_MODEL_DIR or <cache>/<source name>)",
    )
    p.add_argument("--cache", default=os.environ.get("BIOGLINER_MODEL_CACHE", DEFAULT_CACHE), help="cache root")
    p.add_argument("--revision", default=os.environ.get("BIOGLINER_MODEL_REVISION"), help="hub revision (commit/tag)")
    p.add_argument("--storage-options", default=None, help="fsspec storage options as JSON, for URL sources")
    p.add_argument(
        "--labels-tokenizer",
        default=os.environ.get("BIOGLINER_LABELS_TOKENIZER"),
        help="labels tokenizer dir/URL/hub id for checkpoints without labels_tokenizer/ (default: "
        "$BIOGLINER_LABELS_TOKENIZER, else the labels_encoder id via the HF cache, then the hub)",
    )
    p.add_argument("--no-verify", dest="verify", action="store_false", help="copy as is: no labels tokenizer, manifest or test load")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        dest = Path(args.dest) if args.dest else default_dest(args.source, args.cache)
        cfg = FetchConfig(
            source=args.source,
            dest=dest,
            revision=args.revision,
            storage_options=json.loads(args.storage_options) if args.storage_options else None,
            verify=args.verify,
            labels_tokenizer=args.labels_tokenizer,
        )
        out = fetch(cfg)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: biogliner's CheckpointError
        print(f"fetch_model: cannot fetch model {args.source!r}: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
