"""Micro-batches: the model stage's batch composition, a function of the input alone.

A passage's scores depend, in the last bits, on the padded batch it runs in (the padded length
and the batch's shape pick different kernel paths), so batches formed from whatever rows Ray
hands an actor would make reruns differ. Instead, the read task of each input fixes them:

1. the input's passages, in document order, are cut into windows of ``WINDOW_BATCHES x
   batch_size`` passages (the last window of an input may be shorter);
2. each window is tokenised, sorted longest first (total subword tokens; ties keep document
   order) and cut greedily into micro-batches of at most ``batch_size`` encoder inputs (chunks);
   a passage with more chunks than that is a micro-batch of its own;
3. each micro-batch travels as one ``batch`` row (:data:`biogliner.pipeline.stages.stream.BATCHED`).

The model stage runs each row as one ``predict_encoded(micro_batch, banks, batch_size)`` call,
which is exactly one padded forward with its rows in a fixed order (more only for a lone
passage of more than ``batch_size`` chunks, split the same way every time). Scheduling (number
of actors, rows per call, block sizes, retries, kills, the entry point) moves whole rows and so
cannot change a score. What still does: ``batch_size``, precision, device, the backend (PyTorch
or onnxruntime, see :mod:`biogliner.model.onnx_encoder`) and on CPU possibly the thread count,
recorded with each commit (:func:`scoring`).

:func:`group_window` is the pure grouping rule; :func:`micro_batches` applies it to one input's
stream of parse blocks (a plain generator: tested without a cluster).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from biogliner.pipeline.stages import stream

WINDOW_BATCHES = 16  # a sort window holds WINDOW_BATCHES x batch_size passages
GROUPING = f"v1: windows of {WINDOW_BATCHES}x batch_size passages in document order, longest first, <= batch_size chunks"
_KEYS = ("position", "doc_id", "version", "passage_index")


def group_window(n_tokens: Sequence[int], n_chunks: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of one window's passages grouped into micro-batches (see the module docstring).

    Longest first by ``n_tokens`` (ties: lower index first); a micro-batch takes passages while
    its chunks stay within ``batch_size``; a passage of no chunks (nothing to encode) joins the
    current micro-batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(n_tokens) != len(n_chunks):
        raise ValueError(f"{len(n_tokens)} token counts for {len(n_chunks)} chunk counts")
    order = sorted(range(len(n_tokens)), key=lambda i: (-n_tokens[i], i))
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + n_chunks[i] > batch_size:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += n_chunks[i]
    if current:
        groups.append(current)
    return groups


def micro_batches(
    blocks: Iterable[pa.Table], encode: Callable[[list[str]], list], batch_size: int, *, window: int | None = None
) -> Iterator[pa.Table]:
    """One input's parse blocks (``stream.PARSED``: passage rows, then its ``end`` row) ->
    ``stream.BATCHED`` tables: the micro-batches of each completed window, and ``end`` rows
    unchanged (after every micro-batch of their input). ``encode`` maps texts to
    ``EncodedText`` (e.g. :meth:`biogliner.pipeline.stages.tokenize.Tokenize.encode`).

    The output rows depend on the passages and ``batch_size`` only, not on how the passages
    were cut into blocks; a table is yielded per block that completes a window."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    size = window or WINDOW_BATCHES * batch_size
    pending: list[dict[str, Any]] = []  # passage rows not yet in a window, in document order
    seq = [0]  # micro-batches emitted for this unit so far (their sequence numbers)
    for block in blocks:
        stream.require(block, [f.name for f in stream.KEY_FIELDS] + ["text", "info"], "micro_batches")
        out = _Rows(seq)
        for row in block.to_pylist():
            if row["kind"] == stream.PASSAGE:
                pending.append(row)
                if len(pending) >= size:
                    out.add_window(pending[:size], encode, batch_size)
                    del pending[:size]
            elif row["kind"] == stream.END:
                out.add_window(pending, encode, batch_size)
                pending = []
                out.add_end(row)
            else:
                raise ValueError(f"micro_batches: unexpected row kind {row['kind']!r} for {row['source']}/{row['input']}")
        if out.n:
            yield out.table()
    if pending:  # a parse stream always ends with its end row; anything else is a bug upstream
        raise ValueError(f"micro_batches: {len(pending)} passage(s) of {pending[0]['input']} after no end row")


class _Rows:
    """Column buffers of ``stream.BATCHED`` rows."""

    def __init__(self, seq: list[int]) -> None:
        self.cols: dict[str, list] = {name: [] for name in stream.BATCHED.names}
        self.n = 0
        self.seq = seq  # shared across one unit's blocks: the next micro-batch's sequence number

    def add_window(self, rows: list[dict[str, Any]], encode: Callable[[list[str]], list], batch_size: int) -> None:
        if not rows:
            return
        encoded = encode([r["text"] for r in rows])
        if len(encoded) != len(rows):
            raise ValueError(f"micro_batches: the encoder returned {len(encoded)} texts for {len(rows)}")
        n_chunks = [e.n_chunks for e in encoded]
        n_tokens = [sum(len(ids) for ids in e.chunk_input_ids) for e in encoded]
        for group in group_window(n_tokens, n_chunks, batch_size):
            first = rows[group[0]]
            self._add(
                kind=stream.BATCH,
                source=first["source"],
                input=first["input"],
                position=self.seq[0],  # on a batch row: the micro-batch's sequence number in its unit
                passages=[{k: rows[i][k] for k in _KEYS} for i in group],
                n_chunks=sum(n_chunks[i] for i in group),
                n_tokens=sum(n_tokens[i] for i in group),
                encoded=pickle.dumps([encoded[i] for i in group], protocol=pickle.HIGHEST_PROTOCOL),
            )
            self.seq[0] += 1

    def add_end(self, row: dict[str, Any]) -> None:
        """The unit's end row, with the number of its micro-batches added to its info."""
        import json

        info = json.loads(row["info"])
        info["micro_batches"] = self.seq[0]
        self._add(kind=stream.END, source=row["source"], input=row["input"], info=json.dumps(info))

    def _add(self, **row: Any) -> None:
        for name, values in self.cols.items():
            values.append(row.get(name))
        self.n += 1

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self.cols, schema=stream.BATCHED)


def scoring(
    batch_size: int, precision: str, device: str, *, backend: str = "torch", threads: int | None = None, accelerator: str | None = None
) -> dict[str, Any]:
    """What, besides the model and the input, determines the scores: recorded with each commit.
    ``backend``: the text encoder's runtime (``torch``, ``onnx``, ``onnx-int8``); commits made
    before it was recorded ran ``torch``."""
    out: dict[str, Any] = {"batch_size": batch_size, "precision": precision, "device": device, "backend": backend, "grouping": GROUPING}
    if threads is not None:
        out["threads"] = threads
    if accelerator:
        out["accelerator"] = accelerator
    return out
