"""Chunk-and-tokenise stage (CPU): ``text`` -> ``encoded`` (pickled ``EncodedText``) + ``n_tokens``.

A plain callable on a ``pyarrow.Table`` batch (Ray Data fuses it into the parse tasks). The
``Preprocessor`` (tokenizer + config, no weights) is loaded once per worker process and cached.
``end`` rows pass through.
"""

from __future__ import annotations

import functools
import json
import pickle

import pyarrow as pa

from biogliner.pipeline import stream


@functools.lru_cache(maxsize=4)
def _preprocessor(model: str, revision: str | None, cache_dir: str | None, storage_options_json: str):
    from biogliner.model import Preprocessor

    opts = json.loads(storage_options_json) or None
    return Preprocessor.load(model, revision=revision, cache_dir=cache_dir, storage_options=opts)


def encoded_length(enc) -> int:
    """Subword tokens of an ``EncodedText`` over all its chunks: the model stage's sort key."""
    return sum(len(ids) for ids in enc.chunk_input_ids)


class Tokenize:
    """``Tokenize(model, ...)(batch) -> batch``; usable as a plain function object."""

    def __init__(self, model: str, *, revision: str | None = None, cache_dir: str | None = None, storage_options=None):
        self.model = model
        self.revision = revision
        self.cache_dir = cache_dir
        self.storage_options_json = json.dumps(storage_options or {}, sort_keys=True)

    def __call__(self, batch: pa.Table) -> pa.Table:
        stream.require(batch, [f.name for f in stream.KEY_FIELDS] + ["text", "info"], "tokenize")
        kinds = batch.column("kind").to_pylist()
        texts = batch.column("text").to_pylist()
        idx = [i for i, k in enumerate(kinds) if k == stream.PASSAGE]
        encoded: list[bytes | None] = [None] * len(kinds)
        n_tokens: list[int | None] = [None] * len(kinds)
        if idx:
            pre = _preprocessor(self.model, self.revision, self.cache_dir, self.storage_options_json)
            for i, enc in zip(idx, pre.encode([texts[i] for i in idx])):
                encoded[i] = pickle.dumps(enc, protocol=pickle.HIGHEST_PROTOCOL)
                n_tokens[i] = encoded_length(enc)
        cols = {f.name: batch.column(f.name) for f in stream.KEY_FIELDS}
        cols["n_tokens"] = pa.array(n_tokens, pa.int32())
        cols["encoded"] = pa.array(encoded, pa.large_binary())
        cols["info"] = batch.column("info")
        return pa.Table.from_pydict(cols, schema=stream.ENCODED)
