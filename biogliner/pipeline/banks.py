"""Label sets and label banks of a run, resolved on the driver.

:func:`resolve_label_sets` is cheap (no model): it gives the label-set ids the plan compares with
the commits table. :func:`prepare_banks` loads the checkpoint once on the driver (CPU), embeds every
YAML/built-in set once, checks given bank files against the checkpoint's fingerprint, and saves
all banks under ``<output>/_runs/<run_id>/banks/`` for the model actors to load. Never per batch.
"""

from __future__ import annotations

import logging
from biogliner import io as bio
from biogliner.labels import Overrides, ResolvedLabels, resolve

log = logging.getLogger(__name__)

# One owner: a label reference is resolved by biogliner.labels.resolve, the same for every command.
LabelSource = ResolvedLabels


def _override_threshold(ls, threshold: float | None):
    """A ``--threshold`` override (kept for callers of the old name): :meth:`LabelSet.with_options`."""
    return ls if threshold is None else ls.with_options(threshold=threshold)


def resolve_label_sets(refs: tuple[str, ...], threshold: float | None = None, storage_options=None) -> list[ResolvedLabels]:
    """Every ``--labels`` reference of a run through :func:`biogliner.labels.resolve`, with the
    run's ``--threshold``; the same set twice (same resolved id) is an error."""
    overrides = Overrides(threshold=threshold)
    out = [resolve(ref, overrides, storage_options=storage_options) for ref in refs]
    ids = [s.id for s in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"label sets given twice: {dupes}")
    return out


def prepare_banks(
    sources: list[LabelSource],
    model: str,
    bank_dir: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    storage_options=None,
    encoder=None,
) -> tuple[list[str], str]:
    """Embed/check every label set once; returns (bank URLs under ``bank_dir``, model fingerprint).
    ``encoder``: the model already loaded on the driver (see :mod:`biogliner.pipeline.driver_model`)."""
    from biogliner.model import BiEncoder
    from biogliner.store.layout import safe_name

    if encoder is None:
        encoder = BiEncoder.load(
            model,
            revision=revision,
            device="cpu",
            cache_dir=cache_dir,
            storage_options=bio.resolve_storage_options(model, storage_options) if "://" in model else None,
        )
    urls = []
    for src in sources:
        bank = src.bank_for(encoder)  # a bank file: checked against the checkpoint; else embedded now
        url = bio.join(bank_dir, f"{safe_name(src.id)}.safetensors")
        bank.save(url, storage_options=bio.resolve_storage_options(url, storage_options))
        urls.append(url)
        log.info("label bank %s -> %s", src.id, url)
    return urls, encoder.fingerprint
