"""Chunk-and-tokenise (CPU): passage texts -> ``EncodedText`` (chunking, never truncation).

Runs inside the read tasks (see :mod:`biogliner.pipeline.stages.batching`), not in the model actors.
The ``Preprocessor`` (tokenizer + config, no weights) is loaded once per worker process and
cached. Encoding is per text: a text's ``EncodedText`` does not depend on the texts beside it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # biogliner.model imports torch: only where the work runs
    from biogliner.model.preprocess import EncodedText


@functools.lru_cache(maxsize=4)
def _preprocessor(model: str, revision: str | None, cache_dir: str | None, storage_options_json: str):
    from biogliner.model import Preprocessor

    opts = json.loads(storage_options_json) or None
    return Preprocessor.load(model, revision=revision, cache_dir=cache_dir, storage_options=opts)


def encoded_length(enc: EncodedText) -> int:
    """Subword tokens of an ``EncodedText`` over all its chunks: the micro-batches' sort key."""
    return sum(len(ids) for ids in enc.chunk_input_ids)


class Tokenize:
    """``Tokenize(model, ...).encode(texts) -> list[EncodedText]``; picklable (paths only)."""

    def __init__(self, model: str, *, revision: str | None = None, cache_dir: str | None = None, storage_options=None):
        self.model = model
        self.revision = revision
        self.cache_dir = cache_dir
        self.storage_options_json = json.dumps(storage_options or {}, sort_keys=True)

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        if not texts:
            return []
        return _preprocessor(self.model, self.revision, self.cache_dir, self.storage_options_json).encode(list(texts))
