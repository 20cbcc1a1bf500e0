"""PubMed reader against the real files of ../shared/corpus/pubmed (skipped when absent).

The expected text comes from an independent extraction: a whole-document lxml parse and a plain
``itertext`` word sequence per element, with no code shared with the reader.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from biogliner.schema import Deletion, Document
from biogliner.sources import iter_events
from lxml import etree

pytestmark = pytest.mark.corpus

INLINE = ("i", "b", "u", "sup", "sub")


def _corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "pubmed").iterdir() if p.name.endswith((".xml", ".xml.gz")))


def _tree(path: Path):
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def _words(el) -> list[str]:
    return "".join(el.itertext()).split()


def _records(root):
    return [el for el in root if el.tag in ("PubmedArticle", "MedlineCitation", "PubmedBookArticle")]


def _expected_words(rec) -> list[str]:
    """Title (unless it is the '[Not Available].' placeholder), vernacular title, abstract and
    other-abstract words, in document order."""
    words: list[str] = []
    for el in rec.iter("ArticleTitle", "VernacularTitle", "AbstractText"):
        w = _words(el)
        if el.tag == "ArticleTitle" and " ".join(w).lower() in ("[not available].", ""):
            continue
        words.extend(w)
    return words


def _is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(w == h for h in it) for w in needle)


@pytest.fixture(scope="module")
def corpus_events(shared_corpus):
    return {p.name: (p, list(iter_events(str(p)))) for p in _corpus_files(shared_corpus)}


def test_every_title_and_abstract_word_in_order(corpus_events):
    checked = 0
    for name, (path, events) in corpus_events.items():
        docs = [e for e in events if isinstance(e, Document)]
        records = _records(_tree(path))
        assert len(docs) == len(records), name
        for rec, doc in zip(records, docs, strict=True):
            expected = _expected_words(rec)
            got = " ".join(p.text for p in doc.passages).split()
            assert _is_subsequence(expected, got), (name, doc.doc_id)
            assert len(got) == len(expected), (name, doc.doc_id)  # nothing extra, nothing twice
            pmid = (rec.findtext("MedlineCitation/PMID") or rec.findtext("PMID")).strip()
            assert doc.pmid == int(pmid)
            checked += 1
    assert checked >= 600


def test_no_word_glued_across_inline_tags(corpus_events):
    """Around every inline element the passage has exactly the source's boundary: a space where
    the source has whitespace, none where it has none (``T<sub>4</sub>`` -> ``T4``)."""
    seen = spaced = 0
    for name, (path, events) in corpus_events.items():
        texts = {e.doc_id: " ".join(p.text for p in e.passages) for e in events if isinstance(e, Document)}
        for rec in _records(_tree(path)):
            pmid = (rec.findtext("MedlineCitation/PMID") or rec.findtext("PMID")).strip()
            text = texts[f"pubmed:{pmid}"]
            for el in rec.iter(*INLINE):
                if el.getparent().tag not in ("ArticleTitle", "AbstractText", "VernacularTitle"):
                    continue
                prev = el.getprevious()
                before = (prev.tail if prev is not None else el.getparent().text) or ""
                snippet = " ".join((before[-12:] + "".join(el.itertext()) + (el.tail or "")[:12]).split())
                assert snippet in text, (name, pmid, snippet)
                seen += 1
                spaced += before[-1:].isspace() and (el.tail or "")[:1].isspace()
    assert seen >= 60 and spaced > 5


def test_known_inline_cases(corpus_events):
    _, events = corpus_events["biopython_pubmed4.xml"]
    assert "genetic variants at the TERT gene region" in events[0].passages[0].text
    _, events = corpus_events["biopython_pubmed6.xml"]
    assert events[0].passages[0].text.startswith('A "Blood Relationship" Between the Overlooked')


def test_mathml_text_present(corpus_events):
    mml = "{http://www.w3.org/1998/Math/MathML}math"
    n = 0
    for name in ("biopython_pubmed6.xml", "biopython_pubmed7.xml"):
        path, events = corpus_events[name]
        text = " ".join(p.text for e in events for p in e.passages)
        for m in _tree(path).iter(mml):
            expected = re.sub(r"[ \t\n\r]+", " ", "".join(m.itertext())).strip()  # XML whitespace only
            assert expected in text, (name, expected)
            n += 1
    assert n == 7
    _, events = corpus_events["biopython_pubmed7.xml"]
    # pretty-printed MathML: its text nodes, a space where the source has line breaks, and the
    # thin space of <mml:mtext> kept as content
    assert "(1)\u00a0inhaled He 3 / Xe 129 \u2009 MRI ventilation" in events[0].passages[1].text


def test_medline16n0902_counts_and_delete(corpus_events):
    _, events = corpus_events["medline16n0902.xml.gz"]
    docs = [e for e in events if isinstance(e, Document)]
    dels = [e for e in events if isinstance(e, Deletion)]
    assert len(docs) == 604 and len(dels) == 1
    assert (dels[0].doc_id, dels[0].pmid, dels[0].version) == ("pubmed:26432306", 26432306, 1)
    assert events[-1] is dels[0] and dels[0].position == 604
    assert [d.position for d in docs] == list(range(604))
    statuses = {}
    for d in docs:
        statuses[d.status] = statuses.get(d.status, 0) + 1
    assert statuses == {"MEDLINE": 94, "PubMed-not-MEDLINE": 254, "In-Process": 181, "In-Data-Review": 75}
    assert sum(1 for d in docs if any(p.section.startswith("abstract") for p in d.passages)) == 526
    assert sum(1 for d in docs if any(p.section.startswith("abstract:") for p in d.passages)) == 215
    assert sum(1 for d in docs if any(p.section.startswith("other_abstract:") for p in d.passages)) == 21
    assert all(d.year is not None for d in docs)
    assert {d.language for d in docs} == {"eng", "ita"}


def test_modern_ids(corpus_events):
    _, events = corpus_events["biopython_pubmed4.xml"]
    doc = events[0]
    assert (doc.pmid, doc.doi, doc.pmcid, doc.year, doc.journal) == (27797938, "10.1136/gutjnl-2016-312510", "PMC5442267", 2017, "Gut")
