"""The common in-memory form of gold annotations, and the checks every reader shares.

Every format reader turns its input into a :class:`GoldCorpus`: a list of :class:`GoldDoc` (an id, a
text, gold :class:`Span` s as character offsets into that text) plus the records it could not use
(:class:`GoldSkip`, each naming the file, the record and the reason). A document with a bad
annotation (offsets outside the text, a declared mention that does not match ``text[start:end]``,
an annotation crossing a passage boundary...) is skipped WHOLE, so that neither its gold spans nor
the predictions on its text bias the scores; the skip is counted and reported.

Formats with passages (BioC, PubTator, BigBio) are assembled from a :class:`RawDoc` whose passage
and annotation offsets are relative to the document, by :func:`assemble`, either one evaluation
document per passage (``unit="passage"``, the default: the production pipeline predicts passage by
passage) or one per document (``unit="document"``: passages placed at their offsets, gaps filled
with spaces, e.g. PubTator's ``title + " " + abstract``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Unit = Literal["passage", "document"]
UNITS: tuple[str, ...] = ("passage", "document")


class GoldFormatError(ValueError):
    """Unusable gold input. The message names the file and, when known, the document."""


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A gold (or predicted) mention: ``text[start:end]`` with an entity type ``label``."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, slots=True)
class GoldDoc:
    """One evaluation unit: the model sees ``text``; ``spans`` are offsets into it."""

    id: str
    text: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class GoldSkip:
    """A record a reader did not turn into a :class:`GoldDoc`, and why."""

    source: str
    record_id: str | None
    reason: str

    def __str__(self) -> str:
        rec = f" document {self.record_id!r}" if self.record_id is not None else ""
        return f"{self.source}:{rec} {self.reason}"


@dataclass
class GoldCorpus:
    """What a reader returns: the documents, the skipped records and counters of dropped items."""

    source: str
    format: str
    docs: list[GoldDoc] = field(default_factory=list)
    skipped: list[GoldSkip] = field(default_factory=list)
    # Annotations dropped without skipping their document, by reason (e.g. "discontinuous").
    dropped: Counter = field(default_factory=Counter)

    @property
    def labels(self) -> list[str]:
        """The gold entity types, sorted."""
        return sorted({s.label for d in self.docs for s in d.spans})

    @property
    def n_spans(self) -> int:
        return sum(len(d.spans) for d in self.docs)

    def skip(self, record_id: str | None, reason: str) -> None:
        self.skipped.append(GoldSkip(self.source, record_id, reason))


def check_span(text: str, start: object, end: object, label: object, mention: str | None, where: str) -> Span:
    """Validate one annotation against ``text`` and return it as a :class:`Span`.

    ``where`` names the file and document (and annotation) in the error message.
    """
    if isinstance(start, bool) or not isinstance(start, int) or isinstance(end, bool) or not isinstance(end, int):
        raise GoldFormatError(f"{where}: offsets must be integers, got start={start!r} end={end!r}")
    if not isinstance(label, str) or not label.strip():
        raise GoldFormatError(f"{where}: missing or empty entity type {label!r}")
    if not 0 <= start < end <= len(text):
        raise GoldFormatError(f"{where}: span [{start}, {end}) does not lie within the text (length {len(text)})")
    if mention is not None and text[start:end] != mention:
        raise GoldFormatError(
            f"{where}: declared mention {mention!r} does not match the text at [{start}, {end}): {text[start:end]!r}"
        )
    return Span(start, end, label.strip())


@dataclass(frozen=True, slots=True)
class RawPassage:
    offset: int  # document-level offset of text[0]
    text: str
    section: str = ""


@dataclass(frozen=True, slots=True)
class RawAnnotation:
    id: str
    label: str | None
    locations: tuple[tuple[int, int], ...]  # (document-level offset, length)
    mention: str | None


@dataclass(frozen=True, slots=True)
class RawDoc:
    """A document whose passage and annotation offsets are relative to the document."""

    id: str
    passages: tuple[RawPassage, ...]
    annotations: tuple[RawAnnotation, ...]


def assemble(raw: RawDoc, corpus: GoldCorpus, unit: Unit) -> None:
    """Turn ``raw`` into evaluation documents appended to ``corpus`` (or one skip)."""
    try:
        docs = _assemble(raw, corpus, unit)
    except GoldFormatError as exc:
        msg = str(exc)
        prefix = f"{corpus.source}: document {raw.id!r}: "
        corpus.skip(raw.id, msg[len(prefix) :] if msg.startswith(prefix) else msg)
        return
    corpus.docs.extend(docs)


def _assemble(raw: RawDoc, corpus: GoldCorpus, unit: Unit) -> list[GoldDoc]:
    where = f"{corpus.source}: document {raw.id!r}"
    passages = sorted(raw.passages, key=lambda p: p.offset)
    for a, b in zip(passages, passages[1:]):
        if b.offset < a.offset + len(a.text):
            raise GoldFormatError(f"{where}: passages at offsets {a.offset} and {b.offset} overlap")
    if passages and passages[0].offset < 0:
        raise GoldFormatError(f"{where}: negative passage offset {passages[0].offset}")
    # Place each annotation in the passage that contains it.
    per_passage: list[list[tuple[int, int, str, str | None, str]]] = [[] for _ in passages]
    for ann in raw.annotations:
        aw = f"{where}: annotation {ann.id!r}"
        if not ann.locations:
            raise GoldFormatError(f"{aw}: no location")
        if len(ann.locations) > 1:
            corpus.dropped["discontinuous"] += 1  # several fragments: not a span; counted, not scored
            continue
        off, length = ann.locations[0]
        if isinstance(off, bool) or not isinstance(off, int) or isinstance(length, bool) or not isinstance(length, int):
            raise GoldFormatError(f"{aw}: offset and length must be integers, got {off!r}, {length!r}")
        start, end = off, off + length
        for i, p in enumerate(passages):
            if p.offset <= start and end <= p.offset + len(p.text):
                per_passage[i].append((start, end, ann.label, ann.mention, aw))
                break
        else:
            raise GoldFormatError(f"{aw}: span [{start}, {end}) is not inside any passage")
    if unit == "passage":
        out = []
        for i, (p, anns) in enumerate(zip(passages, per_passage)):
            if not p.text:
                continue  # an empty passage (e.g. PubTator's "PMID|a|" with no abstract) holds nothing to score
            spans = [check_span(p.text, s - p.offset, e - p.offset, lab, m, w) for s, e, lab, m, w in anns]
            pid = f"{raw.id}#{p.section}" if p.section else f"{raw.id}#{i}"
            if any(d.id == pid for d in out):
                pid = f"{raw.id}#{i}"
            out.append(GoldDoc(pid, p.text, tuple(sorted(spans))))
        return out
    if unit != "document":
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    base = passages[0].offset if passages else 0
    parts: list[str] = []
    length = 0
    for p in passages:
        gap = p.offset - base - length
        parts.append(" " * gap)
        parts.append(p.text)
        length += gap + len(p.text)
    text = "".join(parts)
    spans = [check_span(text, s - base, e - base, lab, m, w) for anns in per_passage for s, e, lab, m, w in anns]
    return [GoldDoc(raw.id, text, tuple(sorted(spans)))]
