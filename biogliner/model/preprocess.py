"""Text → model inputs, on CPU, without weights: regex words, sentence-aligned chunks, subword ids.

:class:`Preprocessor` needs only the checkpoint's config and text tokenizer, so it is cheap to load
and to pickle into CPU Ray tasks; its output, :class:`EncodedText`, is plain Python data.

Exactly as GLiNER: words are the regex words of :mod:`biogliner.text.words`; each model input is a
word list tokenised by the fast tokenizer with ``is_split_into_words=True`` and special tokens; a
word's vector is its first subtoken's. Unlike GLiNER, nothing is truncated: a text over
``max_len`` words or over the tokenizer's subword limit is cut into sentence-aligned,
non-overlapping chunks (:mod:`biogliner.text.chunks`), each tokenised on its own (so a chunk's ids
are exactly what GLiNER would compute for that chunk's text), and offsets map back to the text.

A word the tokenizer turns into zero subwords (e.g. a lone zero-width or control character) has no
vector; GLiNER then shifts every later word's vector by one (a bug). Here such words are left out
of the model input: they can never start or end an entity, and the other words keep their vectors.
A single word longer than a whole model input (thousands of characters with no space or
punctuation) is left out the same way, with a warning: it cannot be split without changing it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from biogliner.model.checkpoint import resolve
from biogliner.model.config import ModelConfig
from biogliner.model.errors import CheckpointError
from biogliner.text.chunks import plan_chunks, sentence_starts
from biogliner.text.words import split_words

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EncodedText:
    """One text ready for the encoder (plain lists: Arrow- and pickle-friendly).

    ``word_starts``/``word_ends``: char offsets of the words the model sees. Chunk ``c`` covers
    words ``chunk_word_offsets[c]`` .. ``chunk_word_offsets[c] + len(chunk_word_tokens[c]) - 1``;
    ``chunk_input_ids[c]`` are its subword ids (special tokens included) and
    ``chunk_word_tokens[c][i]`` is the position of its i-th word's first subtoken.
    """

    text: str
    word_starts: list[int] = field(default_factory=list)
    word_ends: list[int] = field(default_factory=list)
    chunk_word_offsets: list[int] = field(default_factory=list)
    chunk_input_ids: list[list[int]] = field(default_factory=list)
    chunk_word_tokens: list[list[int]] = field(default_factory=list)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_input_ids)


class Preprocessor:
    """Tokenizer + config: turns texts into :class:`EncodedText` (see module docstring)."""

    def __init__(self, config: ModelConfig, tokenizer, *, source: str = "<memory>"):
        self.config = config
        self.tokenizer = tokenizer
        self.source = source
        if not getattr(tokenizer, "is_fast", False):
            raise CheckpointError(f"{source}: the text tokenizer must be a fast tokenizer (word_ids are needed)")
        self._backend = tokenizer.backend_tokenizer
        self._backend.no_truncation()
        self._backend.no_padding()
        self.n_special = tokenizer.num_special_tokens_to_add(pair=False)
        self.max_subwords = self._subword_limit() - self.n_special
        self.max_words = config.max_len
        if self.max_subwords < 1:
            raise CheckpointError(f"{source}: tokenizer leaves no room for words ({self.max_subwords + self.n_special} tokens)")

    @classmethod
    def load(cls, ref: str, *, revision=None, cache_dir=None, storage_options=None) -> Preprocessor:
        directory = resolve(ref, revision=revision, cache_dir=cache_dir, storage_options=storage_options)
        return cls.from_directory(directory)

    @classmethod
    def from_directory(cls, directory: Path) -> Preprocessor:
        config = ModelConfig.from_file(directory / "gliner_config.json")
        return cls(config, load_tokenizer(directory), source=str(directory))

    def _subword_limit(self) -> int:
        """Subwords per model input (special tokens included): the tokenizer's ``model_max_length``
        (GLiNER truncates there) and, for absolute-position encoders, the position table."""
        limits = []
        mml = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(mml, int) and 0 < mml < 1_000_000:
            limits.append(mml)
        enc = self.config.encoder_config
        absolute = enc.get("model_type") != "deberta-v2" or enc.get("position_biased_input", True)
        if absolute and enc.get("max_position_embeddings"):
            limits.append(int(enc["max_position_embeddings"]))
        if not limits:
            limits.append(int(enc.get("max_position_embeddings") or 512))
        return min(limits)

    # -- public ---------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        splits = [split_words(t) if isinstance(t, str) else _bad_text(i, t) for i, t in enumerate(texts)]
        nonempty = [i for i, s in enumerate(splits) if len(s)]
        encodings = self._encode_batch([splits[i].words for i in nonempty])
        out = [EncodedText(text=t) for t in texts]
        for i, enc in zip(nonempty, encodings):
            self._fill(out[i], splits[i], enc)
        return out

    # -- internals ------------------------------------------------------------------------------
    def _encode_batch(self, word_lists: list[list[str]]):
        if not word_lists:
            return []
        return self._backend.encode_batch(word_lists, is_pretokenized=True, add_special_tokens=True)

    def _fill(self, out: EncodedText, words, enc) -> None:
        n = len(words)
        first, counts = _first_subtokens(enc.word_ids, n)
        if 0 in counts or max(counts) > self.max_subwords:
            # Words the tokenizer erases, or single words longer than a whole model input (e.g. a
            # 5,000-character sequence string): leave them out of the model input (see module
            # docstring); they can never start or end an entity.
            too_long = [i for i in range(n) if counts[i] > self.max_subwords]
            if too_long:
                logger.warning(
                    "%d word(s) of more than %d subwords left out of the model input (first at chars %d-%d)",
                    len(too_long), self.max_subwords, words.starts[too_long[0]], words.ends[too_long[0]],
                )
            keep = [i for i in range(n) if 0 < counts[i] <= self.max_subwords]
            if not keep:
                return
            words = type(words)([words.words[i] for i in keep], [words.starts[i] for i in keep], [words.ends[i] for i in keep])
            enc = self._encode_batch([words.words])[0]
            n = len(words)
            first, counts = _first_subtokens(enc.word_ids, n)
            if 0 in counts:  # pragma: no cover - tokenizers are word-independent for pre-split input
                raise RuntimeError("a word lost its subwords after removing empty words")
        # (a single word over the limit cannot reach the splitting below: it was left out above)
        out.word_starts = list(words.starts)
        out.word_ends = list(words.ends)
        if n <= self.max_words and len(enc.ids) <= self.max_subwords + self.n_special:
            out.chunk_word_offsets = [0]
            out.chunk_input_ids = [list(enc.ids)]
            out.chunk_word_tokens = [first]
            return
        sents = sentence_starts(words.words, words.starts, words.ends, out.text)
        pending = plan_chunks(counts, sents, max_words=self.max_words, max_subwords=self.max_subwords)
        pieces = self._encode_batch([words.words[s:e] for s, e in pending])
        queue = list(zip(pending, pieces))
        while queue:
            (s, e), piece = queue.pop(0)
            if len(piece.ids) > self.max_subwords + self.n_special:
                if e - s == 1:
                    raise ValueError(
                        f"a single word of {len(piece.ids) - self.n_special} subwords exceeds the model's "
                        f"{self.max_subwords}-subword limit (chars {words.starts[s]}-{words.ends[s]})"
                    )
                mid = (s + e) // 2  # context-dependent tokenisation made it longer than planned
                halves = self._encode_batch([words.words[s:mid], words.words[mid:e]])
                queue[:0] = [((s, mid), halves[0]), ((mid, e), halves[1])]
                continue
            f, c = _first_subtokens(piece.word_ids, e - s)
            out.chunk_word_offsets.append(s)
            out.chunk_input_ids.append(list(piece.ids))
            out.chunk_word_tokens.append(f)
        logger.debug("text of %d words, %d subwords -> %d chunks", n, len(enc.ids), out.n_chunks)


def _first_subtokens(word_ids: list[int | None], n_words: int) -> tuple[list[int], list[int]]:
    """Position of each word's first subtoken (-1 if none) and its subtoken count."""
    first = [-1] * n_words
    counts = [0] * n_words
    prev = None
    for pos, wid in enumerate(word_ids):
        if wid is None:
            prev = None
            continue
        if wid != prev:
            if first[wid] < 0:
                first[wid] = pos
        counts[wid] += 1
        prev = wid
    return first, counts


def _bad_text(i: int, value) -> None:
    raise TypeError(f"texts[{i}] is {type(value).__name__}, not str")


def load_tokenizer(directory: Path, sub: str = ""):
    from transformers import AutoTokenizer

    path = directory / sub if sub else directory
    if not path.is_dir():
        raise CheckpointError(f"{path}: missing tokenizer directory")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises many types for missing/corrupt tokenizer files
        raise CheckpointError(f"{path}: cannot load tokenizer ({type(exc).__name__}: {exc})") from exc
    if not getattr(tok, "is_fast", False):
        raise CheckpointError(f"{path}: tokenizer is not a fast tokenizer (word_ids are needed)")
    return tok
