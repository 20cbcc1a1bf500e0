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
