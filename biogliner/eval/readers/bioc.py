"""BioC gold readers (XML and JSON).

BioC offsets (of passages, sentences and annotation locations) are relative to the DOCUMENT; a
passage's text starts at its ``offset``. Annotations may sit in a passage, in a sentence of a
passage, or directly in the document. A passage without ``text`` whose ``sentence`` s carry the
text contributes its sentences as passages. The entity type is the annotation's ``type`` infon
(case-insensitive key). An annotation with several locations (discontinuous) is not a span: it is
dropped and counted (``GoldCorpus.dropped["discontinuous"]``).

XML is parsed safely: no DTD loading, no entity expansion, no network; a document that still holds
an unexpanded entity reference is an error (its text would be incomplete).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from biogliner.eval.gold import GoldCorpus, GoldFormatError, RawAnnotation, RawDoc, RawPassage, Unit, assemble

logger = logging.getLogger(__name__)


# -- XML ------------------------------------------------------------------------------------------
def _infons_xml(el) -> dict[str, str]:
    return {(i.get("key") or "").lower(): (i.text or "") for i in el.findall("infon")}


def _annotations_xml(el, where: str) -> list[RawAnnotation]:
    out = []
    for k, ann in enumerate(el.findall("annotation")):
        infons = _infons_xml(ann)
        locs = []
        for loc in ann.findall("location"):
            try:
                locs.append((int(loc.get("offset")), int(loc.get("length"))))
            except (TypeError, ValueError):
                raise GoldFormatError(
                    f"{where}: annotation {ann.get('id', k)!r}: bad location offset={loc.get('offset')!r} "
                    f"length={loc.get('length')!r}"
                ) from None
        text_el = ann.find("text")
        out.append(
            RawAnnotation(
                id=ann.get("id") or str(k),
                label=infons.get("type"),
                locations=tuple(locs),
                mention=(text_el.text or "") if text_el is not None else None,
            )
        )
    return out


def _int_child(el, tag: str, where: str) -> int:
    child = el.find(tag)
    try:
        return int((child.text or "").strip()) if child is not None else 0
    except ValueError:
        raise GoldFormatError(f"{where}: bad <{tag}> {child.text!r}") from None


def _raw_doc_xml(doc, source: str, position: int) -> RawDoc:
    id_el = doc.find("id")
    doc_id = (id_el.text or "").strip() if id_el is not None and id_el.text else f"#{position}"
    where = f"{source}: document {doc_id!r}"
    passages: list[RawPassage] = []
    anns: list[RawAnnotation] = list(_annotations_xml(doc, where))
    for p in doc.findall("passage"):
        section = _infons_xml(p).get("type", "")
        text_el = p.find("text")
        anns.extend(_annotations_xml(p, where))
        sentences = p.findall("sentence")
        if text_el is not None:
            passages.append(RawPassage(_int_child(p, "offset", where), text_el.text or "", section))
        for s in sentences:
            anns.extend(_annotations_xml(s, where))
            s_text = s.find("text")
            if text_el is None and s_text is not None:
                passages.append(RawPassage(_int_child(s, "offset", where), s_text.text or "", section))
    return RawDoc(doc_id, tuple(passages), tuple(anns))


def _parse_xml(data: bytes, source: str):
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise GoldFormatError(f"{source}: not well-formed XML: {exc}") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and list(dtd.iterentities()):
        raise GoldFormatError(f"{source}: the XML declares entities in its DTD; refusing to expand them")
    return root


def read_bioc_xml(data: bytes, source: str, unit: Unit = "passage") -> GoldCorpus:
    """Read a BioC XML collection (``data``: the file's bytes; ``source`` names it in messages)."""
    from lxml import etree

    corpus = GoldCorpus(source=source, format="bioc-xml")
    root = _parse_xml(data, source)
    if root.tag != "collection":
        raise GoldFormatError(f"{source}: root element is <{root.tag}>, expected a BioC <collection>")
    for position, doc in enumerate(root.iterfind("document")):
        if any(isinstance(n, etree._Entity) for n in doc.iter()):
            id_el = doc.find("id")
            corpus.skip(id_el.text if id_el is not None else f"#{position}", "holds an unexpanded XML entity reference")
            continue
        try:
            raw = _raw_doc_xml(doc, source, position)
        except GoldFormatError as exc:
            id_el = doc.find("id")
            corpus.skip(id_el.text if id_el is not None else f"#{position}", str(exc))
            continue
        assemble(raw, corpus, unit)
    return corpus


# -- JSON -----------------------------------------------------------------------------------------
def _infons_json(obj: dict) -> dict[str, str]:
    infons = obj.get("infons") or {}
    if not isinstance(infons, dict):
        return {}
    return {str(k).lower(): v for k, v in infons.items()}


def _annotations_json(obj: dict, where: str) -> list[RawAnnotation]:
    out = []
    for k, ann in enumerate(obj.get("annotations") or []):
        if not isinstance(ann, dict):
            raise GoldFormatError(f"{where}: annotation {k} is not an object")
        locs = []
        for loc in ann.get("locations") or []:
            try:
                locs.append((loc["offset"], loc["length"]))
            except (KeyError, TypeError):
                raise GoldFormatError(f"{where}: annotation {ann.get('id', k)!r}: bad location {loc!r}") from None
        label = _infons_json(ann).get("type")
        out.append(
            RawAnnotation(
                id=str(ann.get("id", k)),
                label=label if isinstance(label, str) else None,
                locations=tuple(locs),
                mention=ann.get("text"),
            )
        )
    return out


def _raw_doc_json(doc: Any, source: str, position: int) -> RawDoc:
    if not isinstance(doc, dict):
        raise GoldFormatError(f"{source}: document #{position} is not an object")
    doc_id = str(doc.get("id") or f"#{position}")
    where = f"{source}: document {doc_id!r}"
    passages: list[RawPassage] = []
    anns = _annotations_json(doc, where)
    for p in doc.get("passages") or []:
        if not isinstance(p, dict):
            raise GoldFormatError(f"{where}: a passage is not an object")
        section = _infons_json(p).get("type", "")
        anns.extend(_annotations_json(p, where))
        if p.get("text") is not None:
            passages.append(RawPassage(p.get("offset", 0), p["text"], str(section)))
        for s in p.get("sentences") or []:
            anns.extend(_annotations_json(s, where))
            if p.get("text") is None and s.get("text") is not None:
                passages.append(RawPassage(s.get("offset", 0), s["text"], str(section)))
    for p in passages:
        if isinstance(p.offset, bool) or not isinstance(p.offset, int) or not isinstance(p.text, str):
            raise GoldFormatError(f"{where}: passage offset must be an integer and text a string")
    return RawDoc(doc_id, tuple(passages), tuple(anns))


def read_bioc_json(data: bytes, source: str, unit: Unit = "passage") -> GoldCorpus:
    """Read a BioC JSON collection (``{"documents": [...]}``, or a bare list of documents)."""
    corpus = GoldCorpus(source=source, format="bioc-json")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldFormatError(f"{source}: not valid UTF-8 JSON: {exc}") from None
    docs = obj.get("documents") if isinstance(obj, dict) else obj
    if not isinstance(docs, list):
        raise GoldFormatError(f"{source}: expected a BioC collection with a 'documents' list")
    for position, doc in enumerate(docs):
        try:
            raw = _raw_doc_json(doc, source, position)
        except GoldFormatError as exc:
            rid = str(doc.get("id")) if isinstance(doc, dict) and doc.get("id") is not None else f"#{position}"
            corpus.skip(rid, str(exc))
            continue
        assemble(raw, corpus, unit)
    return corpus
