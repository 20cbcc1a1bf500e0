"""Word splitting (as GLiNER's) and sentence-aligned chunking under both budgets."""

from __future__ import annotations

import random

import pytest
from model_corpus import long_text, parity_texts

from biogliner.text.chunks import plan_chunks, sentence_starts
from biogliner.text.words import split_words


def test_words_match_gliner_splitter():
    gliner_tok = pytest.importorskip("gliner.data_processing.tokenizer")
    splitter = gliner_tok.WhitespaceTokenSplitter()
    for text in parity_texts() + ["", "  a_b-c--d e-_f  ", "x\u200by \u00a0z", "1,25-(OH)₂D₃ ≥ 5"]:
        w = split_words(text)
        assert list(zip(w.words, w.starts, w.ends)) == list(splitter(text))
        assert all(text[s:e] == x for x, s, e in zip(w.words, w.starts, w.ends))


def test_sentence_starts():
    text = "One two. Three (four). Five? \"Six.\" Seven\nEight e.g. nine 3.5 ten."
    w = split_words(text)
    starts = sentence_starts(w.words, w.starts, w.ends, text)
    firsts = [w.words[i] for i in starts]
    assert firsts == ["One", "Three", "Five", '"', "Seven", "Eight", "nine"]  # "e.g." ends on "." + space: a cut


@pytest.mark.parametrize("seed", range(20))
def test_plan_chunks_budgets_and_coverage(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 3000)
    sub = [rng.choice([1, 1, 1, 2, 3, 7]) for _ in range(n)]
    sents = sorted({0} | {rng.randrange(n) for _ in range(n // rng.randint(5, 400) + 1)})
    max_words, max_sub = rng.choice([(384, 510), (50, 60), (10, 10), (7, 100)])
    chunks = plan_chunks(sub, sents, max_words=max_words, max_subwords=max_sub)
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    for (s, e), (s2, _) in zip(chunks, chunks[1:]):
        assert e == s2, "contiguous, non-overlapping"
    for s, e in chunks:
        assert e > s and e - s <= max_words
        assert sum(sub[s:e]) <= max_sub or e - s == 1
    # cuts fall on sentence starts unless a sentence alone is over budget
    bounds = sents + [n]
    for s, _ in chunks[1:]:
        if s not in sents:
            sent = max(b for b in sents if b <= s)
            nxt = min(b for b in bounds if b > s)
            assert nxt - sent > max_words or sum(sub[sent:nxt]) > max_sub


def test_long_text_sentences():
    text = long_text()
    w = split_words(text)
    starts = sentence_starts(w.words, w.starts, w.ends, text)
    assert len(starts) > 50
    assert all(w.words[i - 1] in ".!?" or "\n" in text[w.ends[i - 1] : w.starts[i]] for i in starts[1:])
