"""The Hugging Face hub and its local cache, read the way ``huggingface_hub`` lays them out.

Everything is decided at call time from the environment (``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``,
``HF_HOME``), not frozen at import, so a process can switch the cache or offline mode.
A repository in the cache is ``<cache>/models--<org>--<name>/snapshots/<commit>/...`` with
``refs/<revision>`` naming the commit (``main`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# Where a user without hub access is sent (issue 10): the README's "Offline" section.
OFFLINE_HINT = (
    'see README.md, section "Offline": mirror the checkpoint once with `biogliner model mirror SRC DEST` '
    "where the hub is reachable and pass the mirror (a local directory or s3:// URL), or run the pipeline "
    "with a tiny random checkpoint made by scripts/make_tiny_checkpoint.py"
)


class HubError(Exception):
    """The hub could not provide a repository (offline, unreachable, missing, forbidden)."""


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def cache_dir() -> Path:
    """The local hub cache as huggingface_hub finds it: ``HF_HUB_CACHE`` (or its older name
    ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(key):
            return Path(os.environ[key]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def looks_like_repo_id(ref: str) -> bool:
    """``name`` or ``org/name`` (no scheme, no leading ``/``, ``.`` or ``~``)."""
    if not ref or "://" in ref or ref.startswith(("/", ".", "~")) or ref.count("/") > 1:
        return False
    return all(part and part not in (".", "..") for part in ref.split("/"))


def cached_snapshot(repo_id: str, cache_dirs: Sequence[Path], *, revision: str = "main", needs_any: Sequence[str] = ()) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` in the first of ``cache_dirs`` that holds
    one (with at least one of the files ``needs_any``), or None. No network."""
    folder = "models--" + repo_id.replace("/", "--")
    for root in cache_dirs:
        repo = Path(root) / folder
        ref = repo / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else revision
        snap = repo / "snapshots" / commit
        if snap.is_dir() and (not needs_any or any((snap / f).exists() for f in needs_any)):
            return snap
    return None


def download(repo_id: str, *, revision: str | None = None, cache: str | os.PathLike | None = None, allow_patterns=None) -> Path:
    """``snapshot_download`` into the hub cache (the hub client's own caching applies)."""
    if offline():
        raise HubError("HF_HUB_OFFLINE is set (the hub is not asked)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        raise HubError("huggingface_hub is not installed") from None
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=str(cache or cache_dir()), allow_patterns=allow_patterns
            )
        )
    except Exception as exc:  # the hub client raises many types (offline, 404, auth, network)
        raise HubError(f"{type(exc).__name__}: {exc}") from exc
