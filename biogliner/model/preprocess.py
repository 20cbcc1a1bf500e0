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

import numpy as np

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
        limit, self.budget_reason = subword_budget(config, tokenizer)
        self.max_subwords = limit - self.n_special
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
        pre = cls(config, load_tokenizer(directory), source=str(directory))
        pre.log_budget()
        return pre

    def log_budget(self) -> None:
        logger.info(
            "%s: chunks of at most %d words (gliner_config max_len) and %d subwords + %d special tokens (%s)",
            self.source, self.max_words, self.max_subwords, self.n_special, self.budget_reason,
        )

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


def subword_budget(config: ModelConfig, tokenizer) -> tuple[int, str]:
    """Subwords per model input (special tokens included), and why.

    - The tokenizer's ``model_max_length`` when it is a real limit (BERT-style tokenizers: 512):
      GLiNER's tokenizer call truncates there, so a chunk must fit under it.
    - Absolute position embeddings (BERT, or DeBERTa with ``position_biased_input``): the
      position table, ``max_position_embeddings``; past it the encoder fails.
    - DeBERTa-v2/v3 relative attention (``position_biased_input`` false; v3 tokenizers carry
      ``model_max_length`` = 1e30, i.e. no limit): ``max_relative_positions`` (``-1`` means
      ``max_position_embeddings``, 512 for DeBERTa-v3). The log-bucketed relative positions
      (``position_buckets``) tell distances apart up to that span; farther tokens are clamped to the
      last bucket, i.e. look equally far, which the model never saw in pre-training. This is the
      longest input over which the encoder still computes what it was trained to.
    The smallest that applies wins; the config's ``max_len`` (words) is a separate budget.
    """
    enc = config.encoder_config
    limits: list[tuple[int, str]] = []
    mml = getattr(tokenizer, "model_max_length", None)
    if isinstance(mml, int) and 0 < mml < 1_000_000:
        limits.append((mml, f"tokenizer model_max_length={mml}"))
    mpe = int(enc.get("max_position_embeddings") or 0)
    deberta = enc.get("model_type") in ("deberta-v2", "deberta")
    relative = deberta and enc.get("relative_attention", False)
    absolute = not deberta or enc.get("position_biased_input", True)
    if absolute and mpe:
        limits.append((mpe, f"absolute position embeddings max_position_embeddings={mpe}"))
    if relative:
        mrp = int(enc.get("max_relative_positions") or -1)
        span = mrp if mrp > 0 else mpe
        if span > 0:
            buckets = enc.get("position_buckets", -1)
            limits.append(
                (span, f"{enc.get('model_type')} relative attention: position_buckets={buckets} resolve distances up to "
                f"{'max_relative_positions' if mrp > 0 else 'max_position_embeddings'}={span}")
            )
    if not limits:
        limits.append((mpe or 512, f"max_position_embeddings={mpe}" if mpe else "no limit in config or tokenizer: 512 by default"))
    limit, why = min(limits)
    if isinstance(mml, int) and mml >= 1_000_000:
        why += f" (tokenizer model_max_length={mml:.0e}: no limit)"
    return limit, why


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


@dataclass(slots=True)
class Batch:
    """Chunks padded into one encoder batch (numpy; the model moves them to its device).

    ``flat_pos``: each word's first subtoken in the flattened ``[B * T]`` tokens, rows in order;
    ``room``: per flat word, the words left in its chunk (spans may not run past it);
    ``row_start``: each row's first word in the flat word list.
    """

    input_ids: np.ndarray  # [B, T] int64
    attention_mask: np.ndarray  # [B, T] int64
    flat_pos: np.ndarray  # [N] int64
    room: np.ndarray  # [N] int64
    row_start: np.ndarray  # [B] int64


def collate(encoded: Sequence[EncodedText], items: Sequence[tuple[int, int]], pad_id: int) -> Batch:
    """The chunks ``items`` = ``(text index, chunk index)`` of ``encoded`` as one padded batch."""
    ids = [encoded[t].chunk_input_ids[c] for t, c in items]
    wts = [encoded[t].chunk_word_tokens[c] for t, c in items]
    n_tok = max(len(x) for x in ids)
    input_ids = np.full((len(items), n_tok), pad_id, dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
    lengths = np.array([len(x) for x in ids])
    attention = (np.arange(n_tok)[None, :] < lengths[:, None]).astype(np.int64)
    n_words = np.array([len(w) for w in wts], dtype=np.int64)
    row_start = np.concatenate([[0], np.cumsum(n_words)[:-1]]).astype(np.int64)
    flat_pos = np.concatenate([row * n_tok + np.asarray(w, dtype=np.int64) for row, w in enumerate(wts)])
    room = np.concatenate([np.arange(n, 0, -1, dtype=np.int64) for n in n_words])
    return Batch(input_ids, attention, flat_pos, room, row_start)
