"""Gold annotations from a ``datasets`` dataset: a hub name (needs the network) or records in memory.

Three record shapes are recognised, by their columns:

- BigBio ``kb`` schema (``passages`` and ``entities`` with document-level ``offsets``), e.g.
  ``bigbio/bc5cdr`` config ``bc5cdr_bigbio_kb``: assembled per passage or per document like BioC;
  an entity with several offset pairs (discontinuous) is dropped and counted.
- Token tagging (``tokens`` with ``ner_tags`` or ``tags``), tags as strings or as ``ClassLabel``
  ids (their names come from the dataset's features): read as CoNLL.
- Spans (``text`` and ``entities`` with ``start``/``end``/``label``): read as biogliner JSONL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from biogliner.eval.gold import GoldCorpus, GoldDoc, GoldFormatError, RawAnnotation, RawDoc, RawPassage, Unit, assemble
from biogliner.eval.readers.conll import tags_to_spans
from biogliner.eval.readers.spans import span_record

logger = logging.getLogger(__name__)


def _bigbio_doc(rec: dict, doc_id: str, where: str) -> RawDoc:
    passages = []
    for p in rec.get("passages") or []:
        texts, offsets = p.get("text") or [], p.get("offsets") or []
        if len(texts) != len(offsets):
            raise GoldFormatError(f"{where}: passage {p.get('id')!r} has {len(texts)} texts but {len(offsets)} offsets")
        for t, (s, e) in zip(texts, offsets):
            if e - s != len(t):
                raise GoldFormatError(f"{where}: passage {p.get('id')!r}: offsets [{s}, {e}) do not fit its text (length {len(t)})")
            passages.append(RawPassage(s, t, str(p.get("type") or "")))
    anns = []
    for k, ent in enumerate(rec.get("entities") or []):
        offsets = ent.get("offsets") or []
        texts = ent.get("text") or []
        locs = tuple((s, e - s) for s, e in offsets)
        mention = texts[0] if len(texts) == 1 and len(locs) == 1 else None
        anns.append(RawAnnotation(str(ent.get("id", k)), ent.get("type"), locs, mention))
    return RawDoc(doc_id, tuple(passages), tuple(anns))


def _tag_names(features: Any, column: str) -> Sequence[str] | None:
    try:
        return list(features[column].feature.names)
    except (AttributeError, KeyError, TypeError):
        return None


def corpus_from_records(
    records: Iterable[dict], source: str, *, features: Any = None, unit: Unit = "passage"
) -> GoldCorpus:
    """Read dataset rows (dicts) into a :class:`GoldCorpus`; ``features``: the dataset's features."""
    corpus = GoldCorpus(source=source, format="hub")
    tag_names: dict[str, Sequence[str] | None] = {}
    for i, rec in enumerate(records):
        doc_id = str(rec.get("document_id") or rec.get("id") or f"#{i}") if isinstance(rec, dict) else f"#{i}"
        where = f"{source}: document {doc_id!r}"
        try:
            if not isinstance(rec, dict):
                raise GoldFormatError(f"{where}: not a record")
            if "passages" in rec and "entities" in rec:
                corpus.format = "bigbio-kb"
                assemble(_bigbio_doc(rec, doc_id, where), corpus, unit)
            elif "tokens" in rec and ("ner_tags" in rec or "tags" in rec):
                corpus.format = "hub-tags"
                col = "ner_tags" if "ner_tags" in rec else "tags"
                tags = rec[col]
                if tags and not isinstance(tags[0], str):
                    if col not in tag_names:
                        tag_names[col] = _tag_names(features, col)
                    names = tag_names[col]
                    if names is None:
                        raise GoldFormatError(f"{source}: column {col!r} holds integer tags without ClassLabel names")
                    tags = [names[t] for t in tags]
                text, spans = tags_to_spans(list(rec["tokens"]), list(tags), where)
                corpus.docs.append(GoldDoc(doc_id, text, tuple(spans)))
            elif "text" in rec and "entities" in rec:
                corpus.format = "hub-spans"
                corpus.docs.append(span_record(rec, source, doc_id))
            else:
                raise GoldFormatError(
                    f"{source}: unrecognised record columns {sorted(rec)} (expected BigBio kb passages/entities, "
                    "tokens + ner_tags, or text + entities)"
                )
        except GoldFormatError as exc:
            if str(exc).startswith(f"{source}: column") or str(exc).startswith(f"{source}: unrecognised"):
                raise
            corpus.skip(doc_id, str(exc))
    return corpus


def read_hub_dataset(name: str, *, config: str | None = None, split: str = "test", unit: Unit = "passage") -> GoldCorpus:
    """Load ``name`` (``config``, ``split``) with ``datasets.load_dataset``: needs the hub, or a
    dataset already in the local ``datasets`` cache."""
    try:
        import datasets
    except ImportError:
        raise GoldFormatError("reading a hub dataset needs the 'datasets' package: pip install 'biogliner[eval]'") from None
    source = f"hub:{name}" + (f"[{config}]" if config else "") + f":{split}"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # the datasets library raises many types (ConnectionError, DatasetNotFoundError...)
        raise GoldFormatError(
            f"{source}: cannot load the dataset ({type(exc).__name__}: {exc}). Hub datasets need network access "
            "(HF_HUB_OFFLINE is set or the hub is unreachable?): download it where you are online, export it to a "
            "file (e.g. JSONL or BioC) and pass the file to --data"
        ) from None
    return corpus_from_records(ds, source, features=ds.features, unit=unit)
