"""Gold annotations from a hub dataset (its Parquet conversion, or ``datasets``) or records in memory.

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
    """Split ``split`` of hub dataset ``name`` (configuration ``config``; BigBio corpora default to
    their ``kb`` schema): first from its Parquet conversion (works for script-based datasets such
    as BigBio's, which ``datasets`` >= 4 no longer runs), then with ``datasets.load_dataset``
    (which also finds a dataset in the local cache). When neither works, one error says how to get
    the data."""
    from biogliner.eval.readers.parquet import ParquetNotFound, default_config, hub_parquet_root, read_parquet_dir

    config = config or default_config(name)
    source = f"hub:{name}" + (f"[{config}]" if config else "") + f":{split}"
    root = hub_parquet_root(name)
    try:
        return read_parquet_dir(root, config=config, split=split, unit=unit, name=name, source=source)
    except ParquetNotFound as exc:
        parquet_error = str(exc)
        if parquet_error.startswith(f"{source}: "):
            parquet_error = parquet_error[len(source) + 2 :]
    try:
        import datasets
    except ImportError:
        datasets_error = "the 'datasets' package is not installed (pip install 'biogliner[eval]')"
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split)
        except Exception as exc:  # the datasets library raises many types (ConnectionError, DatasetNotFoundError...)
            datasets_error = f"{type(exc).__name__}: {exc}"
        else:
            return corpus_from_records(ds, source, features=ds.features, unit=unit)
    raise GoldFormatError(how_to_get(name, config, split, source, root, parquet_error, datasets_error)) from None


def how_to_get(name: str, config: str | None, split: str, source: str, root: str, parquet_error: str, datasets_error: str) -> str:
    """The error for a hub dataset that could not be read: both attempts, then how to get the data."""
    include = f"{config}/{split}/*" if config else f"*/{split}/*"
    return (
        f"{source}: cannot load the dataset.\n"
        f"  its Parquet conversion ({root}): {parquet_error}\n"
        f"  datasets.load_dataset: {datasets_error[:500]}\n"
        "Hub datasets need network access (HF_HUB_OFFLINE set, or the hub unreachable?). To get the data, where the "
        "hub is reachable:\n"
        f"  hf download {name} --repo-type dataset --revision refs/convert/parquet --include '{include}' --local-dir DIR\n"
        "then pass --data DIR (a local folder, or a file:// or s3:// URL of a copy; BIOGLINER_HUB_PARQUET="
        "<url with {name}> names a mirror of many). Or pass the corpus's own files to --data: BioC XML/JSON and "
        "PubTator are read directly (e.g. BC5CDR's CDR_TestSet.BioC.xml or CDR_TestSet.PubTator.txt)."
    )
