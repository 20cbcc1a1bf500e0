"""Every path is an fsspec URL, resolved here and only here.

Local paths, ``file://``, ``s3://`` and ``gs://`` all go through :func:`filesystem`. A custom S3
endpoint (MinIO, Ceph, a test server) comes from explicit ``storage_options`` or, failing that,
from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` variables, read once here and
handed to every client we build (pyarrow's own S3 client ignores those variables). Credentials
are left to the usual AWS chain and never logged.
"""

from __future__ import annotations

import os
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

StorageOptions = dict[str, Any]


def protocol_of(url: str) -> str:
    """``"s3"`` for ``s3://b/k``, ``"file"`` for local paths."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def s3_endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def resolve_storage_options(url: str, storage_options: StorageOptions | None = None) -> StorageOptions:
    """The storage options to use for ``url``: explicit ones win; for S3, an endpoint from the
    environment is added when none is given explicitly."""
    opts = dict(storage_options or {})
    if protocol_of(url) in ("s3", "s3a"):
        endpoint = s3_endpoint_from_env()
        client_kwargs = dict(opts.get("client_kwargs") or {})
        if endpoint and "endpoint_url" not in opts and "endpoint_url" not in client_kwargs:
            opts["endpoint_url"] = endpoint
    return opts


def filesystem(url: str, storage_options: StorageOptions | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path within it."""
    return url_to_fs(url, **resolve_storage_options(url, storage_options))


def open_binary(url: str, storage_options: StorageOptions | None = None) -> IO[bytes]:
    """Open ``url`` for binary reading, with no decompression (callers decide by suffix)."""
    fs, path = filesystem(url, storage_options)
    return fs.open(path, "rb")


def join(root: str, *parts: str) -> str:
    """Join URL path segments with ``/`` (works for local paths and object-store URLs)."""
    out = root.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def unstrip(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Turn a protocol-less path from ``fs`` back into a URL (``fs.unstrip_protocol``)."""
    return fs.unstrip_protocol(path)


def expand(urls: list[str] | tuple[str, ...], storage_options: StorageOptions | None = None) -> list[str]:
    """Expand globs and directories into a sorted, de-duplicated list of file URLs.

    A pattern that matches nothing raises ``FileNotFoundError`` naming it: an empty input is an
    error, not a silent no-op.
    """
    out: list[str] = []
    for url in urls:
        fs, path = filesystem(url, storage_options)
        if any(ch in path for ch in "*?["):
            found = sorted(fs.glob(path))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if not fs.isdir(p))
        elif fs.exists(path):
            found = [path]
        else:
            found = []
        if not found:
            raise FileNotFoundError(f"no input matches {url!r}")
        out.extend(unstrip(fs, p) if "://" in url else p for p in found)
    return list(dict.fromkeys(out))


def pyarrow_filesystem(url: str, storage_options: StorageOptions | None = None):
    """A ``pyarrow.fs.FileSystem`` for ``url`` (wrapping fsspec), for pyarrow and Ray Data I/O."""
    import pyarrow.fs as pafs

    fs, path = filesystem(url, storage_options)
    if protocol_of(url) == "file":
        return pafs.LocalFileSystem(), path
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path
