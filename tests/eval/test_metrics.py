"""Metrics on hand-made gold/prediction sets; every expected number is derived by hand in comments."""

from __future__ import annotations

import pytest

from biogliner.eval.gold import Span
from biogliner.eval.metrics import Counts, match_relaxed, match_strict, score, score_all
from biogliner.schema import Entity

C, D, G = "Chemical", "Disease", "Gene"


def prf(scores_or_counts):
    c = scores_or_counts.micro if hasattr(scores_or_counts, "micro") else scores_or_counts
    return (c.precision, c.recall, c.f1)


# --------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------
def test_counts_ratios_and_zero_denominators():
    # tp=3 fp=1 fn=2: P = 3/4, R = 3/5, F1 = 2*.75*.6/(1.35) = 0.9/1.35 = 2/3
    c = Counts(3, 1, 2)
    assert c.precision == pytest.approx(0.75)
    assert c.recall == pytest.approx(0.6)
    assert c.f1 == pytest.approx(2 / 3)
    assert c.support == 5
    # nothing predicted, nothing gold: every ratio is 0.0 (the reference's convention)
    assert (Counts().precision, Counts().recall, Counts().f1) == (0.0, 0.0, 0.0)
    # predictions only: P = 0/2 = 0, R = 0 (no gold), F1 = 0
    assert prf(Counts(0, 2, 0)) == (0.0, 0.0, 0.0)
    assert Counts(1, 2, 3) + Counts(4, 5, 6) == Counts(5, 7, 9)


# --------------------------------------------------------------------------------------------
# A corpus exercising partial overlaps, nesting, label confusions, empty documents
# --------------------------------------------------------------------------------------------
# doc 0: "Aspirin reduces breast cancer risk."   exact hits + a partial overlap
#   gold: (0,7,C) aspirin ; (16,29,D) breast cancer
#   pred: (0,7,C) exact   ; (23,29,D) "cancer" partial
#   strict:  C tp1 ; D fp1 (23,29) fn1 (16,29)
#   relaxed: C tp1 ; D tp1
DOC0 = ([Span(0, 7, C), Span(16, 29, D)], [Span(0, 7, C), Span(23, 29, D)])
# doc 1: label confusion
#   gold: (0,5,G) ; pred (0,5,C)
#   strict:  C fp1 ; G fn1      relaxed: same (labels differ)
DOC1 = ([Span(0, 5, G)], [Span(0, 5, C)])
# doc 2: nested gold spans, one prediction overlapping both
#   gold: (0,20,D) outer ; (0,6,G) inner (different label) ; (10,20,D) a second D nested in the outer
#   pred: (0,20,D)
#   strict:  D tp1 (0,20) fn1 (10,20) ; G fn1
#   relaxed: gold by start (stable) = (0,20,D), (0,6,G), (10,20,D); pred (0,20,D) overlaps both D
#            golds: it matches only the first unmatched same-label one, (0,20,D) -> D tp1 ;
#            (10,20,D) fn1 ; G fn1
DOC2 = ([Span(0, 20, D), Span(0, 6, G), Span(10, 20, D)], [Span(0, 20, D)])
# doc 3: empty document (no gold, no predictions): contributes nothing
DOC3 = ([], [])
# doc 4: zero gold, two predictions -> C fp2 (strict and relaxed)
DOC4 = ([], [Span(3, 8, C), Span(10, 12, C)])
# doc 5: gold but zero predictions -> D fn2 (strict and relaxed)
DOC5 = ([Span(0, 4, D), Span(5, 9, D)], [])
# doc 6: two predictions inside one gold span, and a touching (non-overlapping) prediction
#   gold: (10,20,C)
#   pred: (10,14,C) (15,20,C) (20,25,C)   ((20,25) touches at 20 but shares no character)
#   strict:  C fp3 fn1
#   relaxed: (10,14) matches the gold -> tp1; (15,20) gold already matched -> fp; (20,25) no overlap -> fp
#            C tp1 fp2
DOC6 = ([Span(10, 20, C)], [Span(10, 14, C), Span(15, 20, C), Span(20, 25, C)])

CORPUS = [DOC0, DOC1, DOC2, DOC3, DOC4, DOC5, DOC6]


def _corpus_scores(mode):
    return score([g for g, _ in CORPUS], [p for _, p in CORPUS], mode)


def test_strict_corpus_by_hand():
    s = _corpus_scores("strict")
    # C: doc0 tp1 ; doc1 fp1 ; doc4 fp2 ; doc6 fp3 fn1        -> tp1 fp6 fn1
    # D: doc0 fp1 fn1 ; doc2 tp1 fn1 ; doc5 fn2               -> tp1 fp1 fn4
    # G: doc1 fn1 ; doc2 fn1                                   -> tp0 fp0 fn2
    assert s.per_label == {C: Counts(1, 6, 1), D: Counts(1, 1, 4), G: Counts(0, 0, 2)}
    # micro: tp2 fp7 fn7 -> P = 2/9, R = 2/9, F1 = 2/9
    assert prf(s) == pytest.approx((2 / 9, 2 / 9, 2 / 9))
    # macro: C P=1/7 R=1/2 F1=2*(1/7)(1/2)/(1/7+1/2) = (1/7)/(9/14) = 2/9
    #        D P=1/2 R=1/5 F1=2*(1/10)/(7/10) = 2/7
    #        G P=0 R=0 F1=0
    m = s.macro
    assert m["precision"] == pytest.approx((1 / 7 + 1 / 2 + 0) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 1 / 5 + 0) / 3)
    assert m["f1"] == pytest.approx((2 / 9 + 2 / 7 + 0) / 3)


def test_relaxed_corpus_by_hand():
    s = _corpus_scores("relaxed")
    # C: doc0 tp1 ; doc1 fp1 ; doc4 fp2 ; doc6 tp1 fp2        -> tp2 fp5 fn0
    # D: doc0 tp1 ; doc2 tp1 fn1 ; doc5 fn2                   -> tp2 fp0 fn3
    # G: doc1 fn1 ; doc2 fn1                                   -> tp0 fp0 fn2
    assert s.per_label == {C: Counts(2, 5, 0), D: Counts(2, 0, 3), G: Counts(0, 0, 2)}
    # micro: tp4 fp5 fn5 -> P = 4/9, R = 4/9, F1 = 4/9
    assert prf(s) == pytest.approx((4 / 9, 4 / 9, 4 / 9))
    # macro: C P=2/7 R=1 F1=2*(2/7)/(9/7)=4/9 ; D P=1 R=2/5 F1=2*(2/5)/(7/5)=4/7 ; G 0,0,0
    m = s.macro
    assert m["precision"] == pytest.approx((2 / 7 + 1 + 0) / 3)
    assert m["recall"] == pytest.approx((1 + 2 / 5 + 0) / 3)
    assert m["f1"] == pytest.approx((4 / 9 + 4 / 7 + 0) / 3)


def test_one_prediction_over_two_golds_counts_once():
    # gold A (0,5,D) and B (6,11,D); one prediction (3,8,D) overlaps both.
    # relaxed: matches A only -> tp1 fp0 fn1 : P = 1, R = 1/2, F1 = 2/3
    counts = match_relaxed([Span(0, 5, D), Span(6, 11, D)], [Span(3, 8, D)])
    assert counts == {D: Counts(1, 0, 1)}
    # a second prediction overlapping B only picks up B: tp2
    counts = match_relaxed([Span(0, 5, D), Span(6, 11, D)], [Span(3, 8, D), Span(9, 10, D)])
    assert counts == {D: Counts(2, 0, 0)}
    # sorted matching: the later-starting prediction does not steal A from the earlier one.
    # golds A (0,5), B (4,10); preds P1 (0,2) overlaps A only, P2 (3,6) overlaps both.
    # order: P1 -> A, P2 -> B  => tp2 (an unsorted order P2, P1 would give P2->A, P1 -> fp)
    counts = match_relaxed([Span(4, 10, D), Span(0, 5, D)], [Span(3, 6, D), Span(0, 2, D)])
    assert counts == {D: Counts(2, 0, 0)}


def test_relaxed_needs_the_same_label_even_when_overlapping():
    # pred (0,5,C) over gold (0,5,D) and gold (2,4,C): matches the C gold, and the D gold is a FN
    counts = match_relaxed([Span(0, 5, D), Span(2, 4, C)], [Span(0, 5, C)])
    assert counts == {C: Counts(1, 0, 0), D: Counts(0, 0, 1)}


def test_strict_duplicates_count_once_and_entities_are_accepted():
    # gold has an exact duplicate; strict uses sets -> tp1, no fn for the duplicate
    counts = match_strict([Span(0, 3, C), Span(0, 3, C)], [Entity(0, 3, "abc", C, 0.9)])
    assert counts == {C: Counts(1, 0, 0)}
    # tuples work too; nested exact predictions are both TPs
    counts = match_strict([(0, 10, D), (2, 5, G)], [(2, 5, G), (0, 10, D), (0, 9, D)])
    assert counts == {D: Counts(1, 1, 0), G: Counts(1, 0, 0)}


def test_all_empty_corpus_and_zero_predictions():
    # no documents at all: no labels, everything 0
    s = score([], [], "strict")
    assert s.per_label == {} and prf(s) == (0.0, 0.0, 0.0) and s.macro == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # golds but zero predictions anywhere: P = 0 (0/0), R = 0/3 = 0, F1 = 0; fn = 3
    both = score_all([[Span(0, 1, C)], [Span(0, 1, D), Span(2, 3, D)]], [[], []])
    for mode in ("strict", "relaxed"):
        assert both[mode].micro == Counts(0, 0, 3)
        assert prf(both[mode]) == (0.0, 0.0, 0.0)
    # predictions but zero golds: fp = 2, P = 0/2 = 0, R = 0 (no gold)
    s = score([[], []], [[Span(0, 1, C)], [Span(0, 1, D)]], "relaxed")
    assert s.micro == Counts(0, 2, 0)


def test_to_dict_has_report_structure():
    d = _corpus_scores("relaxed").to_dict()
    assert list(d)[:3] == ["precision", "recall", "f1"]
    assert set(d["per_label"]) == {C, D, G}
    assert d["per_label"][D] == {"precision": 1.0, "recall": 0.4, "f1": pytest.approx(4 / 7), "tp": 2, "fp": 0, "fn": 3, "support": 5}
    assert set(d["macro"]) == {"precision", "recall", "f1"}


def test_mismatched_lengths_and_bad_mode_raise():
    with pytest.raises(ValueError, match="2 gold documents but 1"):
        score([[], []], [[]], "strict")
    with pytest.raises(ValueError, match="mode"):
        score([], [], "fuzzy")


# --------------------------------------------------------------------------------------------
# Parity with the GLiNER-biomed evaluator's relaxed counting
# --------------------------------------------------------------------------------------------
def _reference_relaxed(gold_words, pred_words):
    """The GLiNER-biomed ``NEREvaluator`` span mode, restated: word indices with INCLUSIVE ends;
    predictions in decoder order, each taking the first unmatched same-label gold span (in file
    order) that shares a word; unmatched gold spans are false negatives."""
    counts = {}
    matched = [False] * len(gold_words)
    for ps, pe, pl in pred_words:
        hit = False
        for i, (gs, ge, gl) in enumerate(gold_words):
            if not matched[i] and pl == gl and ps <= ge and gs <= pe:
                matched[i] = hit = True
                break
        c = counts.setdefault(pl, [0, 0, 0])
        c[0 if hit else 1] += 1
    for (gs, ge, gl), m in zip(gold_words, matched):
        if not m:
            counts.setdefault(gl, [0, 0, 0])[2] += 1
    return {label: Counts(*c) for label, c in counts.items()}


def test_relaxed_equals_reference_on_random_word_spans():
    import random

    rng = random.Random(7)
    for _ in range(300):
        tokens = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 25))]
        starts = []
        pos = 0
        for t in tokens:
            starts.append(pos)
            pos += len(t) + 1

        def rand_span():
            s = rng.randrange(len(tokens))
            return (s, min(len(tokens) - 1, s + rng.randint(0, 3)), rng.choice("XYZ"))

        # gold: possibly nested/overlapping, in file order (by start, as the benchmark files are)
        gold = sorted({rand_span() for _ in range(rng.randint(0, 6))})
        # predictions: as GLiNER's flat decoder emits them, non-overlapping and sorted by start
        pred = []
        for s in sorted({rand_span() for _ in range(rng.randint(0, 6))}, key=lambda x: rng.random()):
            if all(s[0] > p[1] or p[0] > s[1] for p in pred):
                pred.append(s)
        pred.sort(key=lambda x: x[0])

        def to_chars(spans):
            return [(starts[s], starts[e] + len(tokens[e]), lab) for s, e, lab in spans]

        assert match_relaxed(to_chars(gold), to_chars(pred)) == _reference_relaxed(gold, pred)


def test_relaxed_equals_reference_with_nested_scored_predictions():
    """Nested decoding (the reference's default) emits spans sharing a start, highest score first;
    the match order then matters, and ours must be the reference's whatever order we are given."""
    import random

    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(1, 12)
        starts = [2 * i for i in range(n)]  # one-letter tokens: token i at char 2i
        gold = sorted({(s, min(n - 1, s + rng.randint(0, 3)), rng.choice("XY")) for s in (rng.randrange(n) for _ in range(rng.randint(0, 5)))})
        cands = {(s, min(n - 1, s + rng.randint(0, 4)), rng.choice("XY")) for s in (rng.randrange(n) for _ in range(rng.randint(0, 6)))}
        scored = [(s, e, lab, rng.random()) for s, e, lab in cands]
        # decoder output: accepted by decreasing score, then sorted stably by start
        decoder = sorted(sorted(scored, key=lambda x: -x[3]), key=lambda x: x[0])
        ref = _reference_relaxed(gold, [(s, e, lab) for s, e, lab, _ in decoder])
        shuffled = decoder[:]
        rng.shuffle(shuffled)
        ents = [Entity(starts[s], starts[e] + 1, "t", lab, sc) for s, e, lab, sc in shuffled]
        assert match_relaxed([(starts[s], starts[e] + 1, lab) for s, e, lab in gold], ents) == ref
    # the case where order decides: gold G1 = word 0, G2 = word 3; P1 = words 0-4 (score .9) and
    # P2 = word 0 (score .6) nested in it. Reference order P1, P2: P1 takes G1, P2 overlaps only G1
    # (taken) -> FP; G2 FN. So X: tp1 fp1 fn1 (a start-then-end order would give tp2).
    g = [(0, 1, "X"), (6, 7, "X")]
    p = [Entity(0, 1, "a", "X", 0.6), Entity(0, 9, "a b c d e", "X", 0.9)]
    assert match_relaxed(g, p) == {"X": Counts(1, 1, 1)}
