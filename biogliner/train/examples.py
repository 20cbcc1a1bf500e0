"""Gold corpora -> training examples -> batches.

Texts are preprocessed exactly as at inference (:class:`biogliner.model.preprocess.Preprocessor`:
regex words, sentence-aligned chunks under both the word and the subword budget), so no training
text is truncated: each chunk is one example. Gold character spans become word spans of their
chunk. A gold span that cannot be a model span is dropped and COUNTED, by reason (the reference
drops the same spans silently): its ends are not word boundaries, it crosses a chunk boundary, or
it is wider than ``max_width`` words. Gold types with no label (label map ``null``) are counted too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Example:
    """One chunk: subword ids, each word's first-subtoken position, gold ``(start_word,
    end_word, label_index)`` (inclusive, chunk-relative)."""

    input_ids: list[int]
    word_tokens: list[int]
    spans: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass
class PrepReport:
    docs: int = 0
    chunks: int = 0
    spans: int = 0  # gold spans turned into training targets
    dropped: Counter = field(default_factory=Counter)  # reason -> gold spans not used

    def to_dict(self) -> dict:
        return {"docs": self.docs, "chunks": self.chunks, "spans": self.spans, "dropped": dict(self.dropped)}


def build_examples(docs: Sequence, preprocessor, label_of: Mapping[str, int], max_width: int) -> tuple[list[Example], PrepReport]:
    """Examples of the gold documents ``docs`` (each with ``text`` and ``spans`` of ``start``,
    ``end``, ``label``); ``label_of`` maps a gold type to its label index (absent: not trained)."""
    report = PrepReport()
    texts = [d.text for d in docs]
    encoded = preprocessor.encode(texts) if texts else []
    out: list[Example] = []
    for doc, enc in zip(docs, encoded):
        report.docs += 1
        start_word = {s: i for i, s in enumerate(enc.word_starts)}
        end_word = {e: i for i, e in enumerate(enc.word_ends)}
        chunk_of = np.zeros(len(enc.word_starts), dtype=np.int64)
        for c, off in enumerate(enc.chunk_word_offsets):
            chunk_of[off : off + len(enc.chunk_word_tokens[c])] = c
        per_chunk: list[list[tuple[int, int, int]]] = [[] for _ in range(enc.n_chunks)]
        for span in doc.spans:
            label = label_of.get(span.label)
            if label is None:
                report.dropped["type without a label"] += 1
                continue
            s, e = start_word.get(span.start), end_word.get(span.end)
            if s is None or e is None or e < s:
                report.dropped["ends not on word boundaries"] += 1
                continue
            if chunk_of[s] != chunk_of[e]:
                report.dropped["crosses a chunk boundary"] += 1
                continue
            if e - s + 1 > max_width:
                report.dropped[f"wider than max_width ({max_width}) words"] += 1
                continue
            c = int(chunk_of[s])
            off = enc.chunk_word_offsets[c]
            per_chunk[c].append((s - off, e - off, label))
            report.spans += 1
        for c in range(enc.n_chunks):
            out.append(Example(list(enc.chunk_input_ids[c]), list(enc.chunk_word_tokens[c]), sorted(set(per_chunk[c]))))
            report.chunks += 1
    if report.dropped:
        logger.warning("gold spans not trained on: %s", dict(report.dropped))
    return out, report


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    flat_pos: torch.Tensor  # [N]: each word's first subtoken in the flattened [B*T] tokens
    targets: torch.Tensor  # [N, K, C] float 0/1
    span_mask: torch.Tensor  # [N, K] bool: span ends inside its own text

    def to(self, device) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in ("input_ids", "attention_mask", "flat_pos", "targets", "span_mask")))


def collate(examples: Sequence[Example], n_labels: int, max_width: int, pad_id: int) -> Batch:
    n_tok = max(len(x.input_ids) for x in examples)
    ids = np.full((len(examples), n_tok), pad_id, dtype=np.int64)
    att = np.zeros((len(examples), n_tok), dtype=np.int64)
    pos, room = [], []
    for row, x in enumerate(examples):
        ids[row, : len(x.input_ids)] = x.input_ids
        att[row, : len(x.input_ids)] = 1
        pos.append(row * n_tok + np.asarray(x.word_tokens, dtype=np.int64))
        room.append(np.arange(len(x.word_tokens), 0, -1))
    flat_pos = np.concatenate(pos)
    n = len(flat_pos)
    span_mask = np.arange(max_width)[None, :] < np.concatenate(room)[:, None]
    targets = torch.zeros((n, max_width, n_labels))
    base = 0
    for x in examples:
        for s, e, c in x.spans:
            targets[base + s, e - s, c] = 1.0
        base += len(x.word_tokens)
    return Batch(torch.from_numpy(ids), torch.from_numpy(att), torch.from_numpy(flat_pos), targets, torch.from_numpy(span_mask))
