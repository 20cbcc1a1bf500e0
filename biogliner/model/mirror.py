"""``mirror(src, dest)``: a self-contained copy of a checkpoint that loads with no hub and no cache.

1. ``src`` (hub id, local directory or fsspec URL) is resolved as :meth:`BiEncoder.load` resolves it,
   and so is its labels tokenizer (:mod:`biogliner.model.labels_tokenizer`);
2. the files the model needs (``gliner_config.json``, weights, text tokenizer, model card/licence)
   and the labels tokenizer, under ``labels_tokenizer/``, are copied into a staging directory, with
   ``biogliner-manifest.json`` (size and sha256 of every file, the source, the fingerprint);
3. the staging copy is loaded with the Hugging Face cache and hub switched off (so nothing it needs
   is missing) and checked against its manifest;
4. it is published atomically: a local ``dest`` by renaming the staging directory into place; an
   ``s3://`` (any fsspec URL) ``dest`` by writing an "incomplete" marker, uploading the files, writing
   the manifest LAST and removing the marker (loaders refuse a marked prefix and check the manifest).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from biogliner.model import manifest as mf
from biogliner.model.checkpoint import WEIGHT_FILES, locate_labels_tokenizer, resolve
from biogliner.model.errors import CheckpointError
from biogliner.model.labels_tokenizer import FETCHED_FILES, SUBDIR, TOKENIZER_FILES

logger = logging.getLogger(__name__)

_EXTRA_FILES = ("README.md", "LICENSE", "LICENSE.txt", "LICENSE.md")


@dataclass(frozen=True)
class MirrorResult:
    dest: str
    fingerprint: str
    files: int
    labels_tokenizer_from: str


def mirror(
    src: str,
    dest: str,
    *,
    revision: str | None = None,
    labels_tokenizer: str | None = None,
    cache_dir: str | None = None,
    storage_options: dict | None = None,
    dest_storage_options: dict | None = None,
    overwrite: bool = False,
) -> MirrorResult:
    """Mirror checkpoint ``src`` to ``dest`` (local directory or fsspec URL); see module docstring."""
    remote = dest.startswith(("s3://", "gs://", "gcs://", "az://", "abfs://", "memory://")) or (
        "://" in dest and not dest.startswith("file://")
    )
    local_dest = None if remote else Path(dest.removeprefix("file://")).expanduser()
    if local_dest is not None and local_dest.exists() and not overwrite:
        raise CheckpointError(f"{dest}: already exists (pass overwrite to replace it)")
    if remote and not overwrite:
        from biogliner import io as bio

        fs, root = bio.filesystem(dest, dest_storage_options)
        if fs.exists(f"{root.rstrip('/')}/{mf.MANIFEST}"):
            raise CheckpointError(f"{dest}: a mirror is already there (pass overwrite to replace it)")
    source_dir = resolve(src, revision=revision, cache_dir=cache_dir, storage_options=storage_options)
    lt = locate_labels_tokenizer(source_dir, labels_tokenizer, cache_dir=cache_dir, storage_options=storage_options)
    parent = local_dest.parent if local_dest is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".biogliner-mirror-", dir=parent))
    try:
        n = _stage(source_dir, lt.path, staging)
        fingerprint = _verify(staging, src)
        manifest = mf.build(
            staging, source=src, revision=revision, labels_tokenizer_from=lt.origin, fingerprint=fingerprint
        )
        mf.write(staging, manifest)
        mf.verify(staging, str(staging))
        if local_dest is not None:
            _publish_local(staging, local_dest)
        else:
            _publish_remote(staging, dest, dest_storage_options, manifest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("mirrored %s to %s: %d files, fingerprint %s, labels tokenizer from %s", src, dest, n, fingerprint, lt.origin)
    return MirrorResult(dest, fingerprint, n, lt.origin)


def _stage(source_dir: Path, lt_dir: Path, staging: Path) -> int:
    names = ["gliner_config.json", *WEIGHT_FILES, *TOKENIZER_FILES, *_EXTRA_FILES]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (source_dir / index).is_file():
            import json

            names += sorted(set(json.loads((source_dir / index).read_text())["weight_map"].values()))
    n = 0
    for name in dict.fromkeys(names):
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, staging / name)  # follows the hub cache's symlinks
            n += 1
    (staging / SUBDIR).mkdir()
    for name in FETCHED_FILES:
        if (lt_dir / name).is_file():
            shutil.copyfile(lt_dir / name, staging / SUBDIR / name)
            n += 1
    return n


def _verify(staging: Path, src: str) -> str:
    """Load the staged copy with the cache and hub off; its fingerprint."""
    from biogliner.model.biencoder import BiEncoder

    lt = locate_labels_tokenizer(staging, "", remote=False)  # "": ignore $BIOGLINER_LABELS_TOKENIZER
    try:
        model = BiEncoder.from_directory(staging, device="cpu", source=src, labels_tokenizer=lt)
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: the mirrored copy does not load on its own: {exc}") from exc
    return model.fingerprint


def _publish_local(staging: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
    os.rename(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _publish_remote(staging: Path, dest: str, storage_options: dict | None, manifest: dict) -> None:
    from biogliner import io as bio

    fs, root = bio.filesystem(dest, storage_options)
    root = root.rstrip("/")
    if fs.exists(root):
        for p in fs.find(root):  # overwrite: drop the old manifest first, so the prefix reads incomplete
            if p.endswith("/" + mf.MANIFEST):
                fs.rm(p)
    with fs.open(f"{root}/{mf.INCOMPLETE}", "wb") as f:
        f.write(b"upload in progress\n")
    for rel in manifest["files"]:
        fs.put_file(str(staging / rel), f"{root}/{rel}")
    fs.put_file(str(staging / mf.MANIFEST), f"{root}/{mf.MANIFEST}")
    fs.rm(f"{root}/{mf.INCOMPLETE}")
