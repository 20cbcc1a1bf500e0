"""Span-level NER metrics: strict and relaxed matching, micro and macro P/R/F1, per label.

Pure functions over spans (anything with ``start``, ``end`` (exclusive) and ``label`` attributes, or
``(start, end, label)`` tuples), one list of gold and one list of predicted spans per document.

Strict
    A prediction is a true positive iff a gold span has the same ``start``, ``end`` and ``label``.
    Spans are compared as SETS per document (an exact duplicate counts once). (The GLiNER-biomed
    evaluator's non-span mode compares sets of (mention text, type) per document instead of
    offsets; ours is the usual offset-exact definition of strict matching.)

Relaxed (the GLiNER-biomed protocol, ``NEREvaluator`` with ``span_based=True``)
    Per document, predictions are visited in GLiNER's decoder output order (by start, and by
    decreasing score among spans with the same start; spans without a score keep their given
    order), gold spans in their order sorted stably by start. Each prediction in turn is matched to the FIRST not-yet-matched gold span with the same label that shares at least
    one character with it (``p.start < g.end and g.start < p.end``); a match is a true positive, no
    match a false positive (counted under the prediction's label); gold spans left unmatched are
    false negatives. Matching is one-to-one and greedy, so:

    - a prediction overlapping two gold spans of its label matches only the first unmatched one
      (1 TP); the other gold span is a FN unless another prediction matches it;
    - two predictions overlapping one gold span: the first is a TP, the second a FP (unless it
      matches another gold span);
    - a prediction overlapping a gold span of another label is a FP and that gold span a FN.

    GLiNER-biomed compares word indices with inclusive ends (``p_start <= t_end and t_start <=
    p_end``: sharing a word); on character offsets with exclusive ends, sharing a character is the
    same test. The reference visits predictions in the decoder's output order and gold spans in file
    order (by start in the benchmark files): the order matters when predictions nest (flat_ner
    off), since greedy matching is not an optimal assignment, so ours follows the same order.

Averages
    micro: P/R/F1 from the TP/FP/FN summed over all labels. macro: the unweighted mean of the
    per-label P, R and F1 over the labels that occur (in gold or in predictions), like the
    reference. A ratio with a zero denominator is 0.0 (P = 0 when nothing is predicted, R = 0 when
    there is no gold, F1 = 0 when P + R = 0), also like the reference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["strict", "relaxed"]
MODES: tuple[str, ...] = ("strict", "relaxed")
SpanTuple = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Counts:
    """True positives, false positives and false negatives, with the ratios they define."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        """The number of gold spans."""
        return self.tp + self.fn

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
        }


@dataclass(frozen=True, slots=True)
class Scores:
    """The result of :func:`score`: per-label counts, their micro sum and the macro averages."""

    mode: str
    per_label: Mapping[str, Counts]

    @property
    def micro(self) -> Counts:
        total = Counts()
        for c in self.per_label.values():
            total = total + c
        return total

    @property
    def macro(self) -> dict[str, float]:
        if not self.per_label:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        n = len(self.per_label)
        return {
            "precision": sum(c.precision for c in self.per_label.values()) / n,
            "recall": sum(c.recall for c in self.per_label.values()) / n,
            "f1": sum(c.f1 for c in self.per_label.values()) / n,
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"precision", "recall", "f1", "tp", "fp", "fn", "support", "per_label", "macro"}``."""
        out: dict[str, Any] = dict(self.micro.to_dict())
        out["per_label"] = {label: self.per_label[label].to_dict() for label in sorted(self.per_label)}
        out["macro"] = self.macro
        return out


def as_tuple(span: Any) -> SpanTuple:
    """``(start, end, label)`` from a tuple or any object with those attributes (e.g. ``Entity``)."""
    if isinstance(span, tuple):
        start, end, label = span
    else:
        start, end, label = span.start, span.end, span.label
    return int(start), int(end), str(label)


def match_strict(gold: Iterable[Any], pred: Iterable[Any]) -> dict[str, Counts]:
    """Per-label counts for one document under exact (start, end, label) matching."""
    g = {as_tuple(s) for s in gold}
    p = {as_tuple(s) for s in pred}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in p:
        counts[s[2]][0 if s in g else 1] += 1
    for s in g - p:
        counts[s[2]][2] += 1
    return {label: Counts(*c) for label, c in counts.items()}


def match_relaxed(gold: Iterable[Any], pred: Iterable[Any]) -> dict[str, Counts]:
    """Per-label counts for one document under the GLiNER-biomed relaxed protocol (see module doc)."""
    g = sorted((as_tuple(s) for s in gold), key=lambda t: t[0])
    p = [as_tuple(s) for s in sorted(pred, key=_decoder_order)]
    matched = [False] * len(g)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for ps, pe, pl in p:
        for i, (gs, ge, gl) in enumerate(g):
            if not matched[i] and gl == pl and ps < ge and gs < pe:
                matched[i] = True
                counts[pl][0] += 1
                break
        else:
            counts[pl][1] += 1
    for (_, _, gl), m in zip(g, matched):
        if not m:
            counts[gl][2] += 1
    return {label: Counts(*c) for label, c in counts.items()}


def _decoder_order(span: Any) -> tuple[int, float]:
    """GLiNER's output order: by start, and by decreasing score among spans with the same start
    (the decoder accepts by score, then sorts stably by start)."""
    score_ = getattr(span, "score", None)
    return (as_tuple(span)[0], -float(score_) if score_ is not None else 0.0)


_MATCHERS = {"strict": match_strict, "relaxed": match_relaxed}


def score(golds: Sequence[Iterable[Any]], preds: Sequence[Iterable[Any]], mode: Mode) -> Scores:
    """Scores over a corpus: ``golds[i]`` and ``preds[i]`` are the spans of document ``i``."""
    if mode not in _MATCHERS:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold documents but {len(preds)} prediction lists")
    total: dict[str, Counts] = {}
    matcher = _MATCHERS[mode]
    for g, p in zip(golds, preds):
        for label, c in matcher(g, p).items():
            total[label] = total.get(label, Counts()) + c
    return Scores(mode, total)


def score_all(golds: Sequence[Iterable[Any]], preds: Sequence[Iterable[Any]]) -> dict[str, Scores]:
    """``{"strict": Scores, "relaxed": Scores}``."""
    golds = [list(g) for g in golds]
    preds = [list(p) for p in preds]
    return {mode: score(golds, preds, mode) for mode in MODES}
