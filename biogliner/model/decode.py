"""Greedy span decoding, identical to GLiNER's ``SpanDecoder`` + ``greedy_search``.

Candidates are the spans whose probability is strictly above their label's threshold (compared
in float32, as GLiNER compares a float32 tensor with a Python float). They are visited by
decreasing score, ties in (start, width, label) order (GLiNER's stable sort over ``torch.where``
order); a candidate is accepted unless it conflicts with an accepted span:

- ``flat_ner=True``: any overlap conflicts;
- ``flat_ner=False``: only partial overlaps conflict (nesting is allowed);
- the same (start, end) twice conflicts unless ``multi_label=True``.

Accepted spans are returned sorted by start (stable, as GLiNER). Candidate extraction is one
vectorised pass over the whole batch; only the greedy loop runs in Python, over candidates only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, slots=True)
class BankSlice:
    """Where one label bank's columns sit in the concatenated label axis, and its options."""

    offset: int
    size: int
    flat_ner: bool
    multi_label: bool
    names: tuple[str, ...] = ()


def candidates(
    logits: torch.Tensor, thresholds: torch.Tensor, room: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (word, width, label, score) with ``sigmoid(logit) > threshold[label]`` and the span inside
    its text (``width < room[word]``, ``room`` = words left in the text from this one), in
    (word, width, label) order.

    ``logits`` [N, K, C] over a batch's flat words; ``thresholds`` [C] float32; ``room`` [N].
    """
    probs = torch.sigmoid(logits.float())
    keep = probs > thresholds.to(probs.device, torch.float32)
    width = torch.arange(probs.shape[1], device=probs.device)
    keep &= (width.view(1, -1) < room.to(probs.device).view(-1, 1)).unsqueeze(-1)
    idx = keep.nonzero()  # row-major order
    scores = probs[keep]
    idx = idx.cpu().numpy()
    return idx[:, 0], idx[:, 1], idx[:, 2], scores.cpu().numpy().astype(np.float64)


def greedy(
    starts: np.ndarray, widths: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, flat_ner: bool, multi_label: bool
) -> list[tuple[int, int, int, float]]:
    """GLiNER's greedy search over one text's candidates (given in (start, width, label) order).

    Returns accepted ``(start_word, end_word_inclusive, label_index, score)`` sorted by start.
    """
    if len(scores) == 0:
        return []
    order = np.argsort(-scores, kind="stable")
    accepted: list[tuple[int, int, int, float]] = []
    if flat_ner:
        occupied: dict[int, tuple[int, int]] = {}  # word -> the accepted span covering it
        for i in order.tolist():
            s = int(starts[i])
            e = s + int(widths[i])
            clash = False
            for w in range(s, e + 1):
                span = occupied.get(w)
                if span is not None and not (multi_label and span == (s, e)):
                    clash = True
                    break
            if not clash:
                accepted.append((s, e, int(labels[i]), float(scores[i])))
                for w in range(s, e + 1):
                    occupied[w] = (s, e)
    else:
        for i in order.tolist():
            s = int(starts[i])
            e = s + int(widths[i])
            clash = False
            for a_s, a_e, _, _ in accepted:
                if a_s == s and a_e == e:
                    if not multi_label:
                        clash = True
                        break
                    continue
                overlap = not (s > a_e or a_s > e)
                nested = (s <= a_s and e >= a_e) or (a_s <= s and a_e >= e)
                if overlap and not nested:
                    clash = True
                    break
            if not clash:
                accepted.append((s, e, int(labels[i]), float(scores[i])))
    accepted.sort(key=lambda t: t[0])
    return accepted


def decode_batch(
    logits: torch.Tensor, thresholds: torch.Tensor, batch, slices: Sequence[BankSlice]
) -> list[list[list[tuple[int, int, int, float]]]]:
    """Greedy decoding of a whole batch: ``out[row][bank]`` = accepted ``(start_word, end_word,
    label_index, score)`` of that chunk under that bank (words relative to the chunk, labels
    relative to the bank).

    ``logits`` [N, K, C] over the batch's flat words, ``C`` the banks' labels concatenated as
    ``slices`` says; ``batch`` has ``room`` and ``row_start`` (a :class:`~biogliner.model.preprocess.Batch`).
    Candidates are grouped by (row, bank) with a stable sort, so each group keeps the (word, width,
    label) order greedy decoding needs; only non-empty groups reach Python.
    """
    words, widths, labels, scores = candidates(logits, thresholds, torch.from_numpy(np.asarray(batch.room)))
    row_start = np.asarray(batch.row_start)
    out: list[list[list[tuple[int, int, int, float]]]] = [[[] for _ in slices] for _ in range(len(row_start))]
    if not len(scores):
        return out
    bank_of = np.empty(sum(sl.size for sl in slices), dtype=np.int64)
    for b, sl in enumerate(slices):
        bank_of[sl.offset : sl.offset + sl.size] = b
    rows = np.searchsorted(row_start, words, side="right") - 1
    group = rows * len(slices) + bank_of[labels]
    order = np.argsort(group, kind="stable")
    cuts = np.flatnonzero(np.diff(group[order])) + 1
    for idx in np.split(order, cuts):
        row, b = int(rows[idx[0]]), int(bank_of[labels[idx[0]]])
        sl = slices[b]
        out[row][b] = greedy(
            words[idx] - row_start[row],
            widths[idx],
            labels[idx] - sl.offset,
            scores[idx],
            flat_ner=sl.flat_ner,
            multi_label=sl.multi_label,
        )
    return out
