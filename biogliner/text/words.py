"""Word splitting exactly as GLiNER's ``WhitespaceTokenSplitter`` (its default ``words_splitter_type``).

A word is ``\\w+(?:[-_]\\w+)*`` (letters/digits/underscore runs joined by ``-`` or ``_``) or any
single non-space character, so punctuation marks are words of their own. Offsets are character
offsets into the input string: ``text[starts[i]:ends[i]] == words[i]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")


@dataclass(frozen=True, slots=True)
class Words:
    words: list[str]
    starts: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.words)


def split_words(text: str) -> Words:
    """The regex words of ``text`` with their character offsets."""
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in WORD_PATTERN.finditer(text):
        words.append(m.group())
        starts.append(m.start())
        ends.append(m.end())
    return Words(words, starts, ends)
