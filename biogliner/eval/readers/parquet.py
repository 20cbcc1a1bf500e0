"""Gold data from Parquet: one file, a directory laid out as a Hugging Face hub Parquet conversion,
or a hub dataset's own conversion.

The hub converts every dataset to Parquet on the ``refs/convert/parquet`` branch of its repository
(the files the datasets-server ``/parquet`` endpoint lists), one folder per configuration and
split::

    <config>/<split>/0000.parquet, 0001.parquet, ...          (current layout)
    <config>/<name>-<split>.parquet, <name>-<split>-00000-of-00002.parquet   (older layout)

BigBio corpora (``bigbio/bc5cdr``...) are script-based datasets, which ``datasets`` >= 4 no
longer runs; their Parquet conversions hold the same records (BigBio ``kb`` schema: ``passages``
and ``entities`` with document offsets) and are read here with ``pyarrow`` through fsspec, so a
local copy, a ``file://`` or ``s3://`` URL or the hub itself (``hf://``) all work. Rows go through
the same record reader as ``datasets`` rows (:func:`~biogliner.eval.readers.hub.corpus_from_records`);
integer tag columns get their names from the ``huggingface`` features stored in the Parquet schema.

A ``partial-<split>`` folder (the hub converted only the first rows of a big split) is refused:
scores on part of a test set would not be the corpus's scores.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from types import SimpleNamespace
from typing import Any

from biogliner.eval.gold import GoldCorpus, GoldFormatError, Unit

logger = logging.getLogger(__name__)

# Where a hub dataset's Parquet conversion lives; ``{name}`` is the dataset id (owner/name). A mirror
# of many conversions (one folder per dataset id) is named by setting the variable, e.g.
# BIOGLINER_HUB_PARQUET=s3://bucket/hf-parquet/{name}  or  file:///data/hf-parquet/{name}
HUB_PARQUET_ENV = "BIOGLINER_HUB_PARQUET"
DEFAULT_HUB_PARQUET = "hf://datasets/{name}@refs%2Fconvert%2Fparquet"


class ParquetNotFound(GoldFormatError):
    """No Parquet files for the requested configuration/split at that place (or it is unreachable)."""


def hub_parquet_root(name: str) -> str:
    """The URL of the Parquet conversion of hub dataset ``name``."""
    template = os.environ.get(HUB_PARQUET_ENV) or DEFAULT_HUB_PARQUET
    return template.replace("{name}", name)


def default_config(name: str | None) -> str | None:
    """BigBio corpora are read in their harmonised ``kb`` schema: ``bigbio/bc5cdr`` ->
    ``bc5cdr_bigbio_kb``; other datasets have no default here."""
    if name and name.lower().startswith("bigbio/"):
        return f"{name.split('/', 1)[1]}_bigbio_kb"
    return None


# older layout: <config>/<name>-<split>.parquet or <config>/<name>-<split>-00000-of-00002.parquet
_OLD_ANY = re.compile(r"-([A-Za-z_]+)(?:-\d+-of-\d+)?\.parquet$")


def _old(split: str) -> re.Pattern[str]:
    return re.compile(rf"-{re.escape(split)}(?:-\d+-of-\d+)?\.parquet$")


def _ls(fs, path: str) -> tuple[list[str], list[str]]:
    """(sub-directory names, parquet file paths) directly under ``path``."""
    dirs, files = [], []
    for info in fs.ls(path, detail=True):
        p = info["name"].rstrip("/")
        if info.get("type") == "directory":
            dirs.append(posixpath.basename(p))
        elif p.endswith(".parquet"):
            files.append(p)
    return sorted(dirs), sorted(files)


def find_split_files(fs, root: str, config: str | None, split: str, *, name: str | None = None) -> tuple[str, list[str]]:
    """``(config, parquet files)`` of ``split`` under a conversion root (or a config or split folder).

    Raises :class:`ParquetNotFound` naming what is there when the split is absent.
    """
    root = root.rstrip("/")
    try:
        dirs, files = _ls(fs, root)
    except FileNotFoundError:
        raise ParquetNotFound(f"{root}: no such directory") from None
    if files and not dirs and not any(_OLD_ANY.search(f) for f in files):  # a split folder given directly
        return config or "", files
    if split in dirs or f"partial-{split}" in dirs or any(_old(split).search(f) for f in files):
        config_dir, chosen = root, config or posixpath.basename(root)  # a config folder given directly
    else:
        config = config or default_config(name)
        if config is None:
            if len(dirs) != 1:
                raise ParquetNotFound(
                    f"{root}: several configurations ({', '.join(dirs) or 'none'}): choose one with --dataset-config"
                )
            config = dirs[0]
        if config not in dirs:
            raise ParquetNotFound(f"{root}: no configuration {config!r} (there: {', '.join(dirs) or 'none'})")
        config_dir, chosen = f"{root}/{config}", config
        dirs, files = _ls(fs, config_dir)
    if split in dirs:
        _, split_files = _ls(fs, f"{config_dir}/{split}")
        if split_files:
            return chosen, split_files
    old = [f for f in files if _old(split).search(posixpath.basename(f))]
    if old:
        return chosen, old
    if f"partial-{split}" in dirs:
        raise ParquetNotFound(
            f"{config_dir}: only a partial conversion of split {split!r} (partial-{split}/): the hub converted the first "
            "rows only; get the full split another way (the corpus's own files)"
        )
    splits = sorted(set(dirs) | {m.group(1) for f in files if (m := _OLD_ANY.search(posixpath.basename(f)))})
    raise ParquetNotFound(f"{config_dir}: no split {split!r} (there: {', '.join(splits) or 'none'})")


class _Names(SimpleNamespace):
    pass


def features_from_schema(schema) -> dict[str, Any] | None:
    """The ``datasets`` features stored in a Parquet schema's ``huggingface`` metadata, reduced to
    what :func:`~biogliner.eval.readers.hub.corpus_from_records` reads: ``features[col].feature.names``
    for sequences of ClassLabel."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        feats = json.loads(meta).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return None
    out: dict[str, Any] = {}
    for col, f in feats.items() if isinstance(feats, dict) else ():
        inner = None
        if isinstance(f, list) and f:  # a plain list means a sequence
            inner = f[0]
        elif isinstance(f, dict) and f.get("_type") in ("Sequence", "List", "LargeList"):
            inner = f.get("feature")
        if isinstance(inner, dict) and inner.get("_type") == "ClassLabel" and isinstance(inner.get("names"), list):
            out[col] = _Names(feature=_Names(names=list(inner["names"])))
    return out


def read_parquet_files(fs, paths: list[str], source: str, unit: Unit, *, fmt: str = "parquet") -> GoldCorpus:
    """Rows of ``paths`` (in order) through the hub record reader."""
    import pyarrow.parquet as pq

    from biogliner.eval.readers.hub import corpus_from_records

    records: list[dict] = []
    features: dict[str, Any] = {}
    for p in paths:
        try:
            with fs.open(p, "rb") as fh:
                table = pq.read_table(fh)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError on corrupt files
            raise GoldFormatError(f"{source}: {p}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
        features.update(features_from_schema(table.schema) or {})
        records.extend(table.to_pylist())
    logger.info("%s: %d records from %d Parquet file(s)", source, len(records), len(paths))
    corpus = corpus_from_records(records, source, features=features, unit=unit)
    if corpus.format == "hub":
        corpus.format = fmt
    return corpus


def read_parquet_dir(
    url: str,
    *,
    config: str | None = None,
    split: str = "test",
    unit: Unit = "passage",
    name: str | None = None,
    source: str | None = None,
    storage_options: dict | None = None,
) -> GoldCorpus:
    """A split of a Parquet conversion at ``url`` (laid out as the hub's ``refs/convert/parquet``)."""
    from biogliner import io as bio

    try:
        fs, root = bio.filesystem(url, storage_options)
        chosen, paths = find_split_files(fs, root, config, split, name=name)
    except ParquetNotFound as exc:
        raise ParquetNotFound(f"{source or url}: {exc}") from None
    except GoldFormatError:
        raise
    except Exception as exc:  # unreachable hub/object store, missing fsspec backend, offline mode...
        raise ParquetNotFound(f"{source or url}: cannot list it ({type(exc).__name__}: {exc})") from None
    src = source or f"{url}" + (f"[{chosen}]" if chosen else "") + f":{split}"
    return read_parquet_files(fs, paths, src, unit, fmt="parquet")


def read_parquet_file(url: str, *, unit: Unit = "passage", storage_options: dict | None = None) -> GoldCorpus:
    from biogliner import io as bio

    fs, path = bio.filesystem(url, storage_options)
    if not fs.exists(path):
        raise GoldFormatError(f"{url}: no such file")
    return read_parquet_files(fs, [path], url, unit)
