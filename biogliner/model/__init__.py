"""biogliner's own GLiNER bi-encoder: strict checkpoint loading, pre-embedded label banks, chunked
inference with the folded span head. Heavy modules (torch, transformers) load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from biogliner.model.errors import CheckpointError, LabelBankError

DEFAULT_MODEL = "Ihor/gliner-biomed-bi-small-v1.0"

__all__ = ["DEFAULT_MODEL", "BiEncoder", "CheckpointError", "EncodedText", "LabelBank", "LabelBankError", "Preprocessor"]

_LAZY = {
    "BiEncoder": "biogliner.model.biencoder",
    "LabelBank": "biogliner.model.labelbank",
    "Preprocessor": "biogliner.model.preprocess",
    "EncodedText": "biogliner.model.preprocess",
}

if TYPE_CHECKING:  # pragma: no cover
    from biogliner.model.biencoder import BiEncoder
    from biogliner.model.labelbank import LabelBank
    from biogliner.model.preprocess import EncodedText, Preprocessor


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'biogliner.model' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
