"""Where a checkpoint's labels tokenizer comes from.

Published GLiNER bi-encoders (written by gliner <= 0.2.27, e.g. every GLiNER-biomed bi model) have
no ``labels_tokenizer/`` folder: the reference loads the labels tokenizer by the ``labels_encoder``
hub id of ``gliner_config.json``. biogliner looks, in this order:

1. a tokenizer the user names (``labels_tokenizer=`` / ``$BIOGLINER_LABELS_TOKENIZER``; the
   ``--labels-tokenizer`` option of ``biogliner model mirror``): a local directory, an fsspec URL
   of one, or a hub id;
2. ``<checkpoint>/labels_tokenizer/`` (gliner 0.2.29 and every ``biogliner model mirror``);
3. the local Hugging Face cache, for the ``labels_encoder`` id (``HF_HUB_CACHE``/``HF_HOME``;
   also ``cache_dir`` when one was given);
4. the hub, unless ``HF_HUB_OFFLINE`` is set.

A tokenizer found nowhere is one :class:`CheckpointError` naming the id and the three ways to
provide it. The files found here enter the checkpoint fingerprint under ``labels_tokenizer/``
wherever they came from, so a mirror (which copies them into ``labels_tokenizer/``) has the same
fingerprint as the checkpoint it mirrors.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from biogliner.model import hub
from biogliner.model.errors import CheckpointError

logger = logging.getLogger(__name__)

LABELS_TOKENIZER_ENV = "BIOGLINER_LABELS_TOKENIZER"
SUBDIR = "labels_tokenizer"
# The files of a tokenizer directory (the same list the fingerprint hashes) + the backbone config,
# which AutoTokenizer may read to pick the tokenizer class.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
    "sentencepiece.bpe.model",
)
FETCHED_FILES = (*TOKENIZER_FILES, "config.json")


@dataclass(frozen=True, slots=True)
class Located:
    path: Path  # a local directory holding the tokenizer files
    origin: str  # how it was found, for logs and manifests


def locate(
    directory: Path,
    labels_encoder: str | None,
    *,
    override: str | None = None,
    cache_dir: str | None = None,
    storage_options: dict | None = None,
    remote: bool = True,
) -> Located:
    """The labels tokenizer directory for the checkpoint in ``directory`` (see module docstring).

    ``remote=False`` switches the Hugging Face cache and hub off (only a named tokenizer or
    ``labels_tokenizer/`` count): how a mirror proves it is self-contained.
    """
    override = override if override is not None else (os.environ.get(LABELS_TOKENIZER_ENV) or None)
    if override:
        return _named(override, cache_dir=cache_dir, storage_options=storage_options, remote=remote)
    local = Path(directory) / SUBDIR
    if local.is_dir():
        return Located(local, f"{SUBDIR}/")
    if not labels_encoder:
        raise CheckpointError(f"{directory}: no {SUBDIR}/ and gliner_config.json names no labels_encoder")
    if not remote:
        raise _missing(directory, labels_encoder, "the Hugging Face cache and hub are switched off here")
    if not hub.looks_like_repo_id(labels_encoder):
        raise _missing(directory, labels_encoder, "it is not a hub id (a path on the machine that trained the model?)")
    caches = [Path(cache_dir)] if cache_dir else []
    caches.append(hub.cache_dir())
    found = hub.cached_snapshot(labels_encoder, caches, needs_any=("tokenizer.json", "tokenizer_config.json", "vocab.txt"))
    if found is not None:
        return Located(found, f"Hugging Face cache ({found})")
    try:
        path = hub.download(labels_encoder, cache=cache_dir, allow_patterns=list(FETCHED_FILES))
    except hub.HubError as exc:
        raise _missing(
            directory, labels_encoder, f"it is not in the local Hugging Face cache ({', '.join(map(str, caches))}) and the hub did not provide it: {exc}"
        ) from None
    return Located(path, f"Hugging Face hub ({labels_encoder})")


def _named(ref: str, *, cache_dir: str | None, storage_options: dict | None, remote: bool) -> Located:
    if ref.startswith("file://"):
        ref = ref[len("file://") :]
    if "://" in ref:
        from biogliner.model.checkpoint import fetch_url_dir

        return Located(fetch_url_dir(ref, cache_dir, storage_options, required=None), ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        return Located(path, str(path))
    if remote and hub.looks_like_repo_id(ref):
        found = hub.cached_snapshot(ref, [hub.cache_dir()], needs_any=("tokenizer.json", "tokenizer_config.json"))
        if found is not None:
            return Located(found, f"Hugging Face cache ({found})")
        try:
            return Located(hub.download(ref, cache=cache_dir, allow_patterns=list(FETCHED_FILES)), f"Hugging Face hub ({ref})")
        except hub.HubError as exc:
            raise CheckpointError(f"labels tokenizer {ref!r} (named by {LABELS_TOKENIZER_ENV} or --labels-tokenizer): {exc}") from None
    raise CheckpointError(
        f"labels tokenizer {ref!r} (named by {LABELS_TOKENIZER_ENV} or --labels-tokenizer): no such directory"
        + ("" if "://" in ref or not hub.looks_like_repo_id(ref) else " (and the hub is switched off here)")
    )


def _missing(directory: Path, labels_encoder: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"{directory}: no labels tokenizer for labels encoder {labels_encoder!r}: the checkpoint has no {SUBDIR}/ "
        f"folder (published GLiNER checkpoints, written by gliner <= 0.2.27, never have one) and {why}. "
        f"Provide it one of three ways: (1) mirror the checkpoint where the hub is reachable, "
        f"`biogliner model mirror SRC DEST` (it adds {SUBDIR}/), and load the mirror; "
        f"(2) put {labels_encoder!r} in the local Hugging Face cache (`huggingface-cli download {labels_encoder}`, "
        f"or copy a cache holding it and point HF_HUB_CACHE at it); "
        f"(3) name a tokenizer directory or URL with --labels-tokenizer or ${LABELS_TOKENIZER_ENV}."
    )
