"""PubMed / MEDLINE XML: ``PubmedArticleSet`` (baseline and update files) and legacy ``MedlineCitationSet``.

:func:`parse_pubmed_article`, :func:`parse_medline_citation`, :func:`parse_book_article` and
:func:`parse_delete_citation` are pure functions of one element; :func:`iter_pubmed` streams a
file through them with an lxml pull parser that only reports record elements (tag filter in C),
clearing each record and its predecessors as it goes, so memory stays bounded.

Passage sections:

- ``title``: ``ArticleTitle``; when it is empty or ``[Not Available].`` the ``VernacularTitle``
  is used under the same ``title`` section (the record is then non-English). Otherwise a
  ``VernacularTitle`` becomes its own passage ``vernacular_title``.
- ``abstract``: an unlabelled ``AbstractText``; ``abstract:<Label>`` (or ``abstract:<NlmCategory>``
  when the label is empty) for structured abstracts.
- ``other_abstract:<Language>`` for each ``OtherAbstract/AbstractText``.

Books (``PubmedBookArticle``) become documents with ``status="Book"``: title (``ArticleTitle``,
else ``BookTitle``) and abstract. Records without a usable PMID become :class:`Skip` events.
Deletions (``DeleteCitation``) are yielded after every record of the file, and only once the file
has been read to its end and its checksum (when known) verified. A deletion's ``position``
continues the numbering of the file's records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from biogliner.schema import Deletion, Document, Passage, Skip
from biogliner.sources.stream import OpenedSource, Progress, pull_elements
from biogliner.sources.xmltext import normalize_ws

log = logging.getLogger(__name__)

PUBMED_ROOTS = frozenset({"PubmedArticleSet", "MedlineCitationSet"})
_YEAR = re.compile(r"\d{4}")
_PMC_OTHER_ID = re.compile(r"^\s*(PMC\d+)")
_NOT_AVAILABLE = {"", "[not available].", "[not available]", "not available."}


def _text(el) -> str:
    return normalize_ws("".join(el.itertext()))


def _first_year(el) -> int | None:
    if el is None:
        return None
    m = _YEAR.search(el.findtext("Year") or el.findtext("MedlineDate") or "".join(el.itertext()))
    return int(m.group()) if m else None


def _abstract_passages(abstract, prefix: str, out: list[Passage]) -> None:
    for at in abstract.iterfind("AbstractText"):
        text = _text(at)
        if not text:
            continue
        label = (at.get("Label") or "").strip() or (at.get("NlmCategory") or "").strip()
        out.append(Passage(f"{prefix}:{label}" if label else prefix, text))


def _title_passages(title_el, vern_el, out: list[Passage]) -> Passage | None:
    """Append the title; return the vernacular-title passage to append after the abstract
    (document order), if the vernacular title was not used as the title."""
    title = _text(title_el) if title_el is not None else ""
    vern = _text(vern_el) if vern_el is not None else ""
    if title.lower() in _NOT_AVAILABLE:
        if vern:
            out.append(Passage("title", vern))
        return None
    out.append(Passage("title", title))
    return Passage("vernacular_title", vern) if vern else None


def _ids(article_id_list) -> tuple[str | None, str | None]:
    doi = pmcid = None
    if article_id_list is not None:
        for aid in article_id_list:
            kind = aid.get("IdType")
            if kind == "doi" and doi is None:
                doi = (aid.text or "").strip() or None
            elif kind == "pmc" and pmcid is None:
                pmcid = (aid.text or "").strip() or None
    return doi, pmcid


def _pmid(pmid_el) -> tuple[int, int]:
    """(pmid, version); ``ValueError`` when the PMID is missing or not an integer."""
    if pmid_el is None:
        raise ValueError("no PMID")
    text = (pmid_el.text or "").strip()
    if not text.isdigit():
        raise ValueError(f"PMID {text!r} is not a number")
    version = (pmid_el.get("Version") or "1").strip()
    return int(text), int(version) if version.isdigit() else 1


def parse_medline_citation(mc, source_file: str, position: int, pubmed_data=None) -> Document | Skip:
    """One ``MedlineCitation`` (with the enclosing ``PubmedData`` when there is one).

    Hot path of the baseline pass: children are scanned once instead of one ElementPath ``find``
    per field.
    """
    pmid_el = article = journal_info = None
    other_abstracts = []
    other_ids = []
    for child in mc:
        tag = child.tag
        if tag == "PMID":
            if pmid_el is None:
                pmid_el = child
        elif tag == "Article":
            article = child
        elif tag == "OtherAbstract":
            other_abstracts.append(child)
        elif tag == "MedlineJournalInfo":
            journal_info = child
        elif tag == "OtherID":
            other_ids.append(child)
    try:
        pmid, version = _pmid(pmid_el)
    except ValueError as exc:
        return Skip(source_file, position, None, "no_pmid", str(exc))
    passages: list[Passage] = []
    journal = language = doi = pmcid = year = None
    if article is not None:
        title_el = vern_el = abstract = journal_el = article_date = None
        for child in article:
            tag = child.tag
            if tag == "ArticleTitle":
                title_el = child
            elif tag == "Abstract":
                abstract = child
            elif tag == "VernacularTitle":
                vern_el = child
            elif tag == "Journal":
                journal_el = child
            elif tag == "Language":
                if language is None:
                    language = child.text
            elif tag == "ELocationID":
                if doi is None and child.get("EIdType") == "doi" and child.text and child.text.strip():
                    doi = child.text.strip()
            elif tag == "ArticleDate":
                article_date = child
        vernacular = _title_passages(title_el, vern_el, passages)
        if abstract is not None:
            _abstract_passages(abstract, "abstract", passages)
        if vernacular is not None:
            passages.append(vernacular)
        if journal_el is not None:
            for child in journal_el:
                tag = child.tag
                if tag == "Title":
                    journal = child.text
                elif tag == "ISOAbbreviation" and journal is None:
                    journal = child.text
                elif tag == "JournalIssue":
                    year = _first_year(child.find("PubDate"))
        if year is None:
            year = _first_year(article_date)
    for other in other_abstracts:
        _abstract_passages(other, f"other_abstract:{other.get('Language') or 'und'}", passages)
    if journal is None and journal_info is not None:
        journal = journal_info.findtext("MedlineTA")
    if pubmed_data is not None:
        id_doi, pmcid = _ids(pubmed_data.find("ArticleIdList"))
        doi = id_doi or doi
    if pmcid is None:  # legacy files: <OtherID Source="NLM">PMC4688250 [Available on ...]</OtherID>
        for other_id in other_ids:
            m = _PMC_OTHER_ID.match(other_id.text or "")
            if m:
                pmcid = m.group(1)
                break
    return Document(
        doc_id=f"pubmed:{pmid}",
        source="pubmed",
        source_file=source_file,
        position=position,
        pmid=pmid,
        version=version,
        pmcid=pmcid,
        doi=doi,
        status=mc.get("Status"),
        language=language.strip() if language else None,
        year=year,
        journal=journal.strip() if journal else None,
        passages=tuple(passages),
    )


def parse_pubmed_article(el, source_file: str, position: int) -> Document | Skip:
    """One ``PubmedArticle``."""
    mc = el.find("MedlineCitation")
    if mc is None:
        return Skip(source_file, position, None, "no_medline_citation", "PubmedArticle without MedlineCitation")
    return parse_medline_citation(mc, source_file, position, el.find("PubmedData"))


def parse_book_article(el, source_file: str, position: int) -> Document | Skip:
    """One ``PubmedBookArticle``: title and abstract, ``status="Book"``."""
    bd = el.find("BookDocument")
    if bd is None:
        return Skip(source_file, position, None, "no_book_document", "PubmedBookArticle without BookDocument")
    try:
        pmid, version = _pmid(bd.find("PMID"))
    except ValueError as exc:
        return Skip(source_file, position, None, "no_pmid", str(exc))
    passages: list[Passage] = []
    title_el = bd.find("ArticleTitle")
    if title_el is None or not _text(title_el):
        title_el = bd.find("Book/BookTitle")
    if title_el is not None and _text(title_el):
        passages.append(Passage("title", _text(title_el)))
    abstract = bd.find("Abstract")
    if abstract is not None:
        _abstract_passages(abstract, "abstract", passages)
    doi, pmcid = _ids(bd.find("ArticleIdList"))
    pbd = el.find("PubmedBookData")
    if pbd is not None:
        id_doi, id_pmc = _ids(pbd.find("ArticleIdList"))
        doi, pmcid = doi or id_doi, pmcid or id_pmc
    year = _first_year(bd.find("Book/PubDate")) or _first_year(bd.find("ContributionDate"))
    language = bd.findtext("Language")
    return Document(
        doc_id=f"pubmed:{pmid}",
        source="pubmed",
        source_file=source_file,
        position=position,
        pmid=pmid,
        version=version,
        pmcid=pmcid,
        doi=doi,
        status="Book",
        language=language.strip() if language else None,
        year=year,
        journal=None,
        passages=tuple(passages),
    )


def parse_delete_citation(el, source_file: str, first_position: int) -> list[Deletion | Skip]:
    """One event per ``PMID`` of a ``DeleteCitation``."""
    out: list[Deletion | Skip] = []
    for i, pmid_el in enumerate(el.iterfind("PMID")):
        try:
            pmid, version = _pmid(pmid_el)
        except ValueError as exc:
            out.append(Skip(source_file, first_position + i, None, "bad_delete_pmid", str(exc)))
            continue
        out.append(Deletion(f"pubmed:{pmid}", "pubmed", source_file, first_position + i, pmid=pmid, version=version))
    return out


def _record_id(event) -> str | None:
    return getattr(event, "doc_id", None) or getattr(event, "record_id", None)


def iter_pubmed(opened: OpenedSource) -> Iterator[Document | Deletion | Skip]:
    """Stream the events of one PubMed file (root already sniffed by :func:`open_source`)."""
    legacy = opened.root == "MedlineCitationSet"
    tags = ("MedlineCitation", "DeleteCitation") if legacy else ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
    src = opened.source_file
    progress = Progress()  # the last good record, for error messages
    n_records = 0
    delete_elements: list[list[Deletion | Skip]] = []
    for el in pull_elements(opened, tags, progress):
        tag = el.tag
        if tag == "DeleteCitation":
            delete_elements.append(parse_delete_citation(el, src, -1))
            continue
        if tag == "PubmedArticle":
            event = parse_pubmed_article(el, src, n_records)
        elif tag == "MedlineCitation":
            event = parse_medline_citation(el, src, n_records)
        else:
            event = parse_book_article(el, src, n_records)
        progress.position = n_records
        progress.record_id = _record_id(event) or progress.record_id
        n_records += 1
        yield event
    i = n_records
    for group in delete_elements:
        for event in group:
            yield _renumber(event, i)
            i += 1


def _renumber(event: Deletion | Skip, position: int) -> Deletion | Skip:
    if isinstance(event, Deletion):
        return Deletion(event.doc_id, event.source, event.source_file, position, pmid=event.pmid, version=event.version)
    return Skip(event.source_file, position, event.record_id, event.reason, event.detail)
