"""Sentence-aligned chunking of a word sequence under two budgets, with nothing dropped.

The model sees at most ``max_words`` regex words (GLiNER's ``max_len``) and at most
``max_subwords`` subword tokens (the tokenizer limit minus its special tokens) at a time. A text
over either budget is cut into consecutive, NON-overlapping chunks made of whole sentences, packed
greedily; a single sentence over budget is cut at word boundaries (never dropped, never
truncated). Every word lands in exactly one chunk, in order.

Sentence boundaries are deliberately simple (the model is what matters, the splitter only picks
where to cut): a sentence ends after a ``.``, ``!`` or ``?`` word (plus any closing brackets or
quotes right after it) when whitespace follows, and at every line break.
"""

from __future__ import annotations

from collections.abc import Sequence

_ENDERS = frozenset(".!?")
_CLOSERS = frozenset(")]}\"'”’»")


def sentence_starts(words: Sequence[str], starts: Sequence[int], ends: Sequence[int], text: str) -> list[int]:
    """Indices of the words that start a sentence (always includes 0 when there are words)."""
    n = len(words)
    if n == 0:
        return []
    out = [0]
    i = 0
    while i < n - 1:
        gap = text[ends[i] : starts[i + 1]]
        if "\n" in gap:
            out.append(i + 1)
        elif words[i] in _ENDERS:
            j = i
            while j + 1 < n and words[j + 1] in _CLOSERS and starts[j + 1] == ends[j]:
                j += 1
            if j + 1 < n and starts[j + 1] > ends[j]:
                out.append(j + 1)
            i = j
        i += 1
    return sorted(set(out))


def plan_chunks(
    n_subwords: Sequence[int],
    sentence_start_idx: Sequence[int],
    *,
    max_words: int,
    max_subwords: int,
) -> list[tuple[int, int]]:
    """Split words ``[0, len(n_subwords))`` into ``(start, end)`` word ranges (end exclusive).

    ``n_subwords[i]`` is the number of subword tokens of word ``i``. Each range holds at most
    ``max_words`` words and at most ``max_subwords`` subwords (a word that alone exceeds
    ``max_subwords`` gets a range of its own: callers must check and fail loudly).
    Ranges are whole sentences where possible.
    """
    n = len(n_subwords)
    if n == 0:
        return []
    if max_words < 1 or max_subwords < 1:
        raise ValueError("chunk budgets must be positive")
    bounds = list(sentence_start_idx) + [n]
    pieces: list[tuple[int, int]] = []  # sentences, each already within budget
    for s, e in zip(bounds[:-1], bounds[1:]):
        pieces.extend(_split_over_budget(n_subwords, s, e, max_words, max_subwords))
    chunks: list[tuple[int, int]] = []
    cur_s, cur_e, cur_sub = pieces[0][0], pieces[0][0], 0
    for s, e in pieces:
        sub = sum(n_subwords[s:e])
        if cur_e > cur_s and (e - cur_s > max_words or cur_sub + sub > max_subwords):
            chunks.append((cur_s, cur_e))
            cur_s, cur_sub = s, 0
        cur_e = e
        cur_sub += sub
    chunks.append((cur_s, cur_e))
    return chunks


def _split_over_budget(n_subwords: Sequence[int], s: int, e: int, max_words: int, max_subwords: int) -> list[tuple[int, int]]:
    """Cut words ``[s, e)`` at word boundaries into pieces within both budgets."""
    out = []
    start, sub = s, 0
    for i in range(s, e):
        w = n_subwords[i]
        if i > start and (i - start >= max_words or sub + w > max_subwords):
            out.append((start, i))
            start, sub = i, 0
        sub += w
    out.append((start, e))
    return out
