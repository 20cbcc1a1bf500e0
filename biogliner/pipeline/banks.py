"""Label sets and label banks of a run, resolved on the driver.

:func:`resolve_label_sets` is cheap (no model): it gives the label-set ids the plan compares with
the manifest. :func:`prepare_banks` loads the checkpoint once on the driver (CPU), embeds every
YAML/built-in set once, checks given bank files against the checkpoint's fingerprint, and saves
all banks under ``<output>/_runs/<run_id>/banks/`` for the model actors to load. Never per batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from biogliner import io as bio

log = logging.getLogger(__name__)

BANK_SUFFIXES = (".safetensors", ".bank")


@dataclass(frozen=True)
class LabelSource:
    ref: str  # what the user gave
    label_set: object  # biogliner.labels.LabelSet
    bank_url: str | None = None  # a pre-embedded bank file

    @property
    def id(self) -> str:
        return self.label_set.id


def is_bank_ref(ref: str) -> bool:
    return ref.lower().endswith(BANK_SUFFIXES)


def _override_threshold(ls, threshold: float | None):
    """A ``--threshold`` override changes results: it becomes part of the set's version."""
    if threshold is None:
        return ls
    labels = tuple(replace(spec, threshold=None) for spec in ls.labels)
    return replace(ls, labels=labels, threshold=float(threshold), version=f"{ls.version}-t{threshold:g}")


def resolve_label_sets(refs: tuple[str, ...], threshold: float | None = None, storage_options=None) -> list[LabelSource]:
    from biogliner.labels import load_label_set

    out: list[LabelSource] = []
    for ref in refs:
        if is_bank_ref(ref):
            from biogliner.model import LabelBank

            bank = LabelBank.load(ref, storage_options=bio.resolve_storage_options(ref, storage_options))
            out.append(LabelSource(ref, _override_threshold(bank.label_set, threshold), ref))
        else:
            out.append(LabelSource(ref, _override_threshold(load_label_set(ref, storage_options=storage_options), threshold)))
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
) -> tuple[list[str], str]:
    """Embed/check every label set once; returns (bank URLs under ``bank_dir``, model fingerprint)."""
    from biogliner.model import BiEncoder, LabelBank
    from biogliner.store.layout import safe_name

    encoder = BiEncoder.load(
        model,
        revision=revision,
        device="cpu",
        cache_dir=cache_dir,
        storage_options=bio.resolve_storage_options(model, storage_options) if "://" in model else None,
    )
    urls = []
    for src in sources:
        if src.bank_url is not None:
            bank = LabelBank.load(
                src.bank_url,
                expected_fingerprint=encoder.fingerprint,
                storage_options=bio.resolve_storage_options(src.bank_url, storage_options),
            )
            if bank.label_set != src.label_set:  # --threshold: same vectors, other decoding options
                bank = replace(bank, label_set=src.label_set)
        else:
            bank = encoder.embed_labels(src.label_set)
        url = bio.join(bank_dir, f"{safe_name(src.id)}.safetensors")
        bank.save(url, storage_options=bio.resolve_storage_options(url, storage_options))
        urls.append(url)
        log.info("label bank %s -> %s", src.id, url)
    return urls, encoder.fingerprint
