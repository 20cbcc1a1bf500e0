"""Span-format gold readers: biogliner's JSONL and GLiNER's tokenised JSON.

JSONL (one object per line)::

    {"id": "d1", "text": "Aspirin treats pain.", "entities": [{"start": 0, "end": 7, "label": "Chemical"}]}

``label`` may be spelled ``type``; an entity may declare its ``text``, which must equal
``text[start:end]``. A missing ``id`` becomes ``line <n>``. A bad line skips that record (counted).

GLiNER format (the format of the GLiNER-biomed benchmark files: a JSON list, or JSONL)::

    {"tokenized_text": ["Aspirin", "treats", "pain", "."], "ner": [[0, 0, "Chemical"]]}

``ner`` holds ``[first token, last token (inclusive), type]``; the text is the tokens joined by single
spaces, as the GLiNER-biomed evaluator scores it; records are named ``<file name>:<index>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from biogliner.eval.gold import GoldCorpus, GoldDoc, GoldFormatError, Span, check_span


def span_record(obj: Any, where: str, default_id: str) -> GoldDoc:
    """A :class:`GoldDoc` from one ``{"id", "text", "entities"}`` record (validated)."""
    if not isinstance(obj, dict):
        raise GoldFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    doc_id = str(obj["id"]) if obj.get("id") is not None else default_id
    where = f"{where}: document {doc_id!r}"
    text = obj.get("text")
    if not isinstance(text, str):
        raise GoldFormatError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    ents = obj.get("entities", [])
    if ents is None:
        ents = []
    if not isinstance(ents, list):
        raise GoldFormatError(f"{where}: 'entities' must be a list")
    spans = []
    for k, ent in enumerate(ents):
        if not isinstance(ent, dict):
            raise GoldFormatError(f"{where}: entity {k} is not an object")
        label = ent.get("label", ent.get("type"))
        spans.append(check_span(text, ent.get("start"), ent.get("end"), label, ent.get("text"), f"{where}: entity {k}"))
    return GoldDoc(doc_id, text, tuple(sorted(spans)))


def gliner_record(obj: Any, where: str, doc_id: str) -> GoldDoc:
    """A :class:`GoldDoc` from one ``{"tokenized_text", "ner"}`` record (validated)."""
    where = f"{where}: document {doc_id!r}"
    if not isinstance(obj, dict) or not isinstance(obj.get("tokenized_text"), list):
        raise GoldFormatError(f"{where}: expected an object with a 'tokenized_text' list")
    tokens = obj["tokenized_text"]
    if not all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tokens):
        raise GoldFormatError(f"{where}: tokens must be non-empty strings without whitespace")
    starts = []
    pos = 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    text = " ".join(tokens)
    spans = []
    for k, item in enumerate(obj.get("ner") or []):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise GoldFormatError(f"{where}: ner[{k}] must be [first token, last token, type], got {item!r}")
        first, last, label = item
        if isinstance(first, bool) or not isinstance(first, int) or isinstance(last, bool) or not isinstance(last, int):
            raise GoldFormatError(f"{where}: ner[{k}]: token indices must be integers, got {item!r}")
        if not 0 <= first <= last < len(tokens):
            raise GoldFormatError(f"{where}: ner[{k}]: tokens [{first}, {last}] out of range (0..{len(tokens) - 1})")
        spans.append(check_span(text, starts[first], starts[last] + len(tokens[last]), label, None, f"{where}: ner[{k}]"))
    return GoldDoc(doc_id, text, tuple(sorted(spans)))


def _records(data: bytes, source: str, corpus: GoldCorpus) -> Iterable[tuple[str, int, Any]]:
    """(where, index, parsed object) for a JSON list or JSONL; bad JSONL lines are skipped, counted."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{source}: not UTF-8 text: {exc}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(f"{source}: not valid JSON: {exc}") from None
        for i, obj in enumerate(items):
            yield f"{source}: record {i}", i, obj
        return
    index = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            corpus.skip(f"line {lineno}", f"{source}:{lineno}: not valid JSON: {exc}")
            index += 1
            continue
        yield f"{source}:{lineno}", index, obj
        index += 1


def read_jsonl(data: bytes, source: str) -> GoldCorpus:
    """Read ``{"id", "text", "entities"}`` records (JSONL, or a JSON list of such records)."""
    corpus = GoldCorpus(source=source, format="jsonl")
    for where, index, obj in _records(data, source, corpus):
        default_id = f"line {where.rsplit(':', 1)[-1]}" if not where.endswith(f"record {index}") else f"record {index}"
        try:
            corpus.docs.append(span_record(obj, where, default_id))
        except GoldFormatError as exc:
            rid = str(obj.get("id")) if isinstance(obj, dict) and obj.get("id") is not None else default_id
            corpus.skip(rid, str(exc))
    return corpus


def read_gliner(data: bytes, source: str) -> GoldCorpus:
    """Read GLiNER ``{"tokenized_text", "ner"}`` records (a JSON list or JSONL)."""
    corpus = GoldCorpus(source=source, format="gliner")
    stem = os.path.basename(source)
    for where, index, obj in _records(data, source, corpus):
        doc_id = f"{stem}:{index}"
        try:
            corpus.docs.append(gliner_record(obj, where, doc_id))
        except GoldFormatError as exc:
            corpus.skip(doc_id, str(exc))
    return corpus
