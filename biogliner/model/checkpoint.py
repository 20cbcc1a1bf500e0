"""Finding and reading GLiNER checkpoints: hub id, local directory or fsspec URL; the GLiNER →
biogliner state-dict key map (:func:`map_key`, :data:`IGNORED_PREFIXES`) and strict loading
(:func:`build_net`).

- local directory: used in place;
- ``s3://...`` (any fsspec URL): copied once per machine into a local cache directory keyed by
  the URL and the remote listing (names, sizes, ETags/mtimes), so a changed checkpoint gets a new
  entry. Concurrent actors are safe: a file lock serialises downloads of one key, and each
  download goes to a temporary directory that is atomically renamed into place when complete;
- hub id (``owner/name``, optional ``revision``): the local HF cache when ``HF_HUB_OFFLINE`` is set,
  else ``huggingface_hub.snapshot_download`` (see :mod:`biogliner.model.hub`); failing both, a
  :class:`CheckpointError` pointing at the README's "Offline" section.

A URL holding a ``biogliner-manifest.json`` (``biogliner model mirror``) is checked against it
after download; a prefix still marked as an upload in progress is refused.

Weights are read with ``safetensors`` or ``torch.load(weights_only=True)``, never unpickled freely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biogliner.model import hub
from biogliner.model.errors import CheckpointError
from biogliner.model.labels_tokenizer import TOKENIZER_FILES, Located, locate
from biogliner.model.manifest import INCOMPLETE, MANIFEST
from biogliner.model.manifest import verify as verify_manifest

if TYPE_CHECKING:  # pragma: no cover
    from biogliner.model.config import ModelConfig
    from biogliner.model.network import BiEncoderNet

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# TOKENIZER_FILES (besides config and weights) change what the model computes: they enter the fingerprint.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "labels_tokenizer/*"]


def default_cache_dir() -> Path:
    root = os.environ.get("BIOGLINER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "biogliner"
    )
    return Path(root) / "checkpoints"


def resolve(
    ref: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    storage_options: dict | None = None,
) -> Path:
    """The local directory holding checkpoint ``ref`` (downloading it if needed)."""
    if ref.startswith("file://"):
        ref = ref[len("file://") :]
    if "://" in ref:
        return _fetch_fsspec(ref, Path(cache_dir) if cache_dir else default_cache_dir(), storage_options)
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{ref}: is a file; a checkpoint is a directory holding gliner_config.json")
    looks_local = ref.startswith(("/", "./", "../", "~")) or ref.count("/") != 1
    if looks_local:
        raise CheckpointError(f"{ref}: no such checkpoint directory (and not a hub id of the form owner/name)")
    return _fetch_hub(ref, revision, cache_dir)


def _fetch_hub(repo_id: str, revision: str | None, cache_dir: str | None) -> Path:
    """The hub snapshot of ``repo_id``: from the hub, or from the local HF cache when offline or
    when the hub fails (the hub client's own behaviour, decided here at call time)."""
    caches = [Path(cache_dir)] if cache_dir else [hub.cache_dir()]
    cached = hub.cached_snapshot(repo_id, caches, revision=revision or "main", needs_any=("gliner_config.json",))
    if cached is not None and hub.offline():
        return cached
    try:
        return hub.download(repo_id, revision=revision, cache=caches[0], allow_patterns=_HUB_PATTERNS)
    except hub.HubError as exc:
        if cached is not None:
            logger.warning("%s: hub unavailable (%s); using the cached snapshot %s", repo_id, exc, cached)
            return cached
        where = "it is not in the local Hugging Face cache" if hub.offline() else "the hub did not provide it"
        raise CheckpointError(
            f"{repo_id}{'@' + revision if revision else ''}: cannot load this hub checkpoint: {where} ({exc}). "
            f"Pass a local directory or an s3:// URL instead; {hub.OFFLINE_HINT}."
        ) from None


def _fetch_fsspec(url: str, cache_root: Path, storage_options: dict | None) -> Path:
    return fetch_url_dir(url, cache_root, storage_options, required="gliner_config.json")


def fetch_url_dir(url: str, cache_root, storage_options: dict | None, *, required: str | None) -> Path:
    """A local copy of the directory at fsspec ``url`` (a checkpoint, or a tokenizer when
    ``required`` is None), cached by URL and listing; checked against its manifest when it has one."""
    from biogliner import io as bio

    cache_root = Path(cache_root) if cache_root else default_cache_dir()
    fs, root = bio.filesystem(url, storage_options)
    root = root.rstrip("/")
    try:
        listing = fs.find(root, detail=True)
    except FileNotFoundError:
        listing = {}
    files = {p: info for p, info in listing.items() if info.get("type", "file") != "directory"}
    if not files:
        raise CheckpointError(f"{url}: no {'checkpoint ' if required else ''}files found there")
    rels = {p: p[len(root) :].lstrip("/") for p in files}
    if INCOMPLETE in rels.values() and MANIFEST not in rels.values():
        raise CheckpointError(
            f"{url}: a mirror upload in progress or interrupted ({INCOMPLETE} and no {MANIFEST}); "
            "wait for it, or run `biogliner model mirror` again"
        )
    if required and required not in rels.values():
        raise CheckpointError(f"{url}: no {required} at that prefix")
    signature = json.dumps(
        sorted(
            (rels[p], info.get("size"), str(info.get("ETag") or info.get("etag") or info.get("mtime") or ""))
            for p, info in files.items()
        )
    )
    key = hashlib.sha256(f"{url}\n{signature}".encode()).hexdigest()[:20]
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in root.rsplit("/", 1)[-1])[:60]
    final = cache_root / f"{name}-{key}"
    if (final / ".complete").exists():
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    with _FileLock(cache_root / f"{name}-{key}.lock"):
        if (final / ".complete").exists():  # another process finished while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{key}-", dir=cache_root))
        try:
            for p, rel in rels.items():
                if rel == INCOMPLETE:
                    continue
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(p, str(dest))
            if verify_manifest(tmp, url) is None:
                logger.info("%s: no %s (not written by biogliner model mirror): completeness not checked", url, MANIFEST)
            (tmp / ".complete").write_text(url + "\n")
            if final.exists():  # a stale, incomplete entry (crash mid-rename is impossible: rename is atomic)
                shutil.rmtree(final)
            os.rename(tmp, final)
            logger.info("fetched %s (%d files) into %s", url, len(rels), final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


class _FileLock:
    """An exclusive advisory lock on a file (POSIX ``flock``); a no-op where unavailable."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX: tmp dir + rename still keeps it correct
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def locate_labels_tokenizer(
    directory: Path,
    override: str | os.PathLike | None = None,
    *,
    cache_dir: str | None = None,
    storage_options: dict | None = None,
    remote: bool = True,
) -> Located:
    """Where the labels tokenizer of the checkpoint in ``directory`` is (see
    :mod:`biogliner.model.labels_tokenizer`): the ``labels_encoder`` id comes from its config."""
    from biogliner.model.config import ModelConfig

    labels_encoder = ModelConfig.from_file(Path(directory) / "gliner_config.json").raw.get("labels_encoder")
    return locate(
        Path(directory),
        labels_encoder if isinstance(labels_encoder, str) else None,
        override=None if override is None else str(override),
        cache_dir=cache_dir,
        storage_options=storage_options,
        remote=remote,
    )


def load_state_dict(directory: Path) -> tuple[dict[str, Any], str]:
    """All tensors of the checkpoint in ``directory`` and the file(s) they came from."""
    import torch

    for name in WEIGHT_FILES:
        path = directory / name
        if not path.exists():
            continue
        if name.endswith(".index.json"):
            try:
                index = json.loads(path.read_text())
                shards = sorted(set(index["weight_map"].values()))
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{path}: corrupt shard index ({exc})") from None
            state: dict[str, Any] = {}
            for shard in shards:
                state.update(_load_file(directory / shard))
            return state, str(path)
        return _load_file(path), str(path)
    raise CheckpointError(f"{directory}: no weights (expected one of {', '.join(WEIGHT_FILES)})")


def _load_file(path: Path) -> dict[str, Any]:
    import torch

    if not path.exists():
        raise CheckpointError(f"{path}: missing weight file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors/pickle raise assorted types on corrupt files
        raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a flat state dict of tensors")
    return state


def fingerprint(config_json: str, state: dict[str, Any], directory: Path, labels_tokenizer_dir: Path | None = None) -> str:
    """A stable identity of what the checkpoint computes: sha256 of the canonical config, every
    tensor (name, dtype, shape, bytes; independent of the file format) and the tokenizer files
    (the labels tokenizer's from ``labels_tokenizer_dir``, default ``directory/labels_tokenizer``,
    always hashed under the name ``labels_tokenizer/``: a mirror fingerprints like its source)."""
    import torch

    h = hashlib.sha256()
    h.update(b"biogliner-fingerprint-v1\0")
    h.update(config_json.encode())
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().data)
    dirs = {"": Path(directory), "labels_tokenizer/": Path(labels_tokenizer_dir or Path(directory) / "labels_tokenizer")}
    for sub, base in dirs.items():
        for fname in TOKENIZER_FILES:
            p = base / fname
            if p.exists():
                h.update(f"\0{sub}{fname}\0".encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:24]


# GLiNER state-dict prefixes -> ours. Checkpoint keys under IGNORED_PREFIXES are read and dropped.
KEY_MAP = (
    ("token_rep_layer.bert_layer.model.", "text.model."),
    ("token_rep_layer.projection.", "text.projection."),
    ("token_rep_layer.labels_encoder.model.", "labels.model."),
    ("token_rep_layer.labels_projection.", "labels.projection."),
    ("span_rep_layer.span_rep_layer.", "span_head."),
    ("prompt_rep_layer.", "prompt_rep_layer."),
)
IGNORED_PREFIXES = ("rnn.",)  # the bi-encoder stores an LSTM that its forward never runs
_MLP_SUFFIX = {".0.weight": ".fc1.weight", ".0.bias": ".fc1.bias", ".3.weight": ".fc2.weight", ".3.bias": ".fc2.bias"}


def map_key(key: str) -> str | None:
    """Our parameter name for GLiNER checkpoint key ``key`` (None: not a key we know)."""
    for src, dst in KEY_MAP:
        if key.startswith(src):
            out = dst + key[len(src) :]
            if dst in ("span_head.", "prompt_rep_layer."):
                for s, d in _MLP_SUFFIX.items():
                    if out.endswith(s):
                        return out[: -len(s)] + d
                return None
            return out
    return None


def gliner_key(ours: str) -> str | None:
    """The GLiNER checkpoint key of our parameter ``ours`` (inverse of :func:`map_key`)."""
    for src, dst in KEY_MAP:
        if ours.startswith(dst):
            out = src + ours[len(dst) :]
            if dst in ("span_head.", "prompt_rep_layer."):
                for s, d in _MLP_SUFFIX.items():
                    if out.endswith(d):
                        return out[: -len(d)] + s
                return None
            return out
    return None


def build_net(config: ModelConfig, state: dict, weights_file: str) -> BiEncoderNet:
    """A :class:`BiEncoderNet` holding exactly the checkpoint's weights (strict, see below).

    Every checkpoint key must map to a parameter/buffer of ours (the dead LSTM ``rnn.*`` excepted:
    read and dropped) and every persistent parameter/buffer of ours must be loaded, with equal
    shapes; otherwise :class:`CheckpointError` lists the offending keys.
    """
    from biogliner.model.network import BiEncoderNet

    net = BiEncoderNet(config.encoder_config, config.labels_encoder_config, config.hidden_size, config.max_width)
    mapped: dict[str, Any] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key.startswith(IGNORED_PREFIXES):
            continue
        ours = map_key(key)
        if ours is None:
            unknown.append(key)
        else:
            mapped[ours] = tensor
    _match_embedding_sizes(net, mapped)
    own = net.state_dict()
    unexpected = sorted(k for k in mapped if k not in own) + sorted(unknown)
    missing = sorted(k for k in own if k not in mapped)
    bad_shape = sorted(
        f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
        for k in mapped
        if k in own and tuple(mapped[k].shape) != tuple(own[k].shape)
    )
    problems = []
    if unexpected:
        problems.append(f"unused checkpoint keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if missing:
        problems.append(f"model parameters not in the checkpoint ({len(missing)}): {', '.join(missing[:20])}")
    if bad_shape:
        problems.append(f"shape mismatches ({len(bad_shape)}): {'; '.join(bad_shape[:20])}")
    if problems:
        raise CheckpointError(f"{weights_file}: checkpoint does not match its gliner_config.json: " + " | ".join(problems))
    net.load_state_dict(mapped, strict=True)
    return net


def _match_embedding_sizes(net: BiEncoderNet, mapped: dict) -> None:
    """Resize a backbone's token embedding table to the checkpoint's (GLiNER may have saved a
    resized table while the embedded config keeps the original ``vocab_size``)."""
    for side in (net.text, net.labels):
        prefix = "text.model." if side is net.text else "labels.model."
        emb = side.model.get_input_embeddings()
        name = next((n for n, p in side.model.named_parameters() if p is emb.weight), None)
        if name is None:
            continue
        w = mapped.get(prefix + name)
        if w is not None and w.dim() == 2 and w.shape[1] == emb.weight.shape[1] and w.shape[0] != emb.weight.shape[0]:
            side.model.resize_token_embeddings(int(w.shape[0]))
