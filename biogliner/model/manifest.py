"""The manifest of a mirrored checkpoint: every file with its size and sha256.

``biogliner model mirror`` writes ``biogliner-manifest.json`` LAST: on an object store, where a
directory cannot be renamed into place, a prefix with files but no manifest is an upload in
progress (or a crashed one); the ``.biogliner-mirror-incomplete`` marker, written first and
removed after the manifest, says so explicitly. Loading a URL checks the manifest when there is
one (every listed file present, same size and hash) and refuses a prefix still marked incomplete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from biogliner.model.errors import CheckpointError

MANIFEST = "biogliner-manifest.json"
INCOMPLETE = ".biogliner-mirror-incomplete"
FORMAT = "biogliner-mirror-v1"
# Bookkeeping of caches and fetches: never part of a checkpoint.
NOT_CONTENT = frozenset({MANIFEST, INCOMPLETE, ".complete", ".biogliner-fetch-complete"})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_files(directory: Path) -> list[str]:
    """Relative paths of the checkpoint files under ``directory`` (bookkeeping and hidden dirs left out)."""
    out = []
    for p in sorted(Path(directory).rglob("*")):
        rel = p.relative_to(directory)
        if p.is_file() and rel.as_posix() not in NOT_CONTENT and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return out


def build(directory: Path, **info: Any) -> dict[str, Any]:
    files = {rel: {"size": (directory / rel).stat().st_size, "sha256": sha256_file(directory / rel)} for rel in content_files(directory)}
    return {"format": FORMAT, **info, "files": files}


def write(directory: Path, manifest: dict[str, Any]) -> Path:
    path = Path(directory) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"not a {FORMAT} manifest")
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc})") from None
    return manifest


def verify(directory: Path, where: str) -> dict[str, Any] | None:
    """Check ``directory`` against its manifest (None: there is none). Raises :class:`CheckpointError`
    naming every missing or altered file."""
    manifest = read(directory)
    if manifest is None:
        return None
    bad = []
    for rel, meta in sorted(manifest["files"].items()):
        p = Path(directory) / rel
        if not p.is_file():
            bad.append(f"{rel} missing")
        elif p.stat().st_size != meta.get("size") or sha256_file(p) != meta.get("sha256"):
            bad.append(f"{rel} differs")
    if bad:
        raise CheckpointError(f"{where}: does not match its {MANIFEST}: {', '.join(bad[:20])}")
    return manifest
