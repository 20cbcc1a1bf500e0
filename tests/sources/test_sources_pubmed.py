"""PubMed reader on hand-written fixtures and the bundled sample corpus."""

from __future__ import annotations

from biogliner.schema import Deletion, Document, Skip
from biogliner.sources import iter_events, sample_corpus_path
from biogliner.sources.pubmed import parse_pubmed_article
from lxml import etree

from sources_fixtures import pubmed_xml, write


def _events(path):
    return list(iter_events(str(path)))


def test_inline_tags_keep_source_word_boundaries(fixtures_dir):
    doc = _events(fixtures_dir / "inline_boundaries.xml")[0]
    title = doc.passages[0]
    assert title.section == "title"
    assert title.text == "Variants at the TERT gene and theTERTgene without spaces."


def test_pretty_print_whitespace_collapsed_but_unicode_kept(fixtures_dir):
    doc = _events(fixtures_dir / "inline_boundaries.xml")[0]
    by_section = {p.section: p.text for p in doc.passages}
    assert by_section["abstract:BACKGROUND"] == "Mice lacking Tp53 developed tumours (Mus musculus)."
    # a no-break space is content, not pretty-printing
    assert by_section["abstract"] == "An unlabelled closing sentence with a no-break\u00a0space."


def test_structured_labels_nlm_category_fallback_mathml_and_bad_nesting(fixtures_dir):
    doc = _events(fixtures_dir / "inline_boundaries.xml")[0]
    sections = [p.section for p in doc.passages]
    assert sections == ["title", "abstract:BACKGROUND", "abstract:RESULTS", "abstract", "other_abstract:ger"]
    results = doc.passages[2].text
    assert results == 'CO2 and H2O; the isotope He3 was inhaled; badly nested "markup" kept.'
    assert doc.passages[4].text == "Mäuse ohne Tp53 entwickelten Tumoren."
    assert all("Copyright" not in p.text for p in doc.passages)


def test_record_metadata(fixtures_dir):
    doc = _events(fixtures_dir / "inline_boundaries.xml")[0]
    assert (doc.doc_id, doc.pmid, doc.version, doc.status) == ("pubmed:80000001", 80000001, 2, "MEDLINE")
    assert doc.year == 1998  # first \d{4} of a MedlineDate
    assert doc.journal == "Journal of Hand-Written Fixtures"
    assert doc.doi == "10.5555/fixture.1-from-idlist"  # ArticleIdList wins over ELocationID
    assert doc.pmcid == "PMC8000001"
    assert doc.language == "eng"
    assert (doc.source, doc.source_file, doc.position) == ("pubmed", "inline_boundaries.xml", 0)


def test_vernacular_title_replaces_not_available_and_is_kept_otherwise(fixtures_dir):
    events = _events(fixtures_dir / "inline_boundaries.xml")
    fre = events[1]
    assert [(p.section, p.text) for p in fre.passages] == [("title", "Le gène CFTR et la mucoviscidose.")]
    assert fre.year == 2019 and fre.language == "fre" and fre.status == "In-Process"
    jpn = events[3]
    assert [(p.section, p.text) for p in jpn.passages] == [
        ("title", "[Translation of a title]."),
        ("vernacular_title", "日本語のタイトル"),
    ]


def test_record_without_pmid_is_a_counted_skip_and_positions_follow_the_file(fixtures_dir):
    events = _events(fixtures_dir / "inline_boundaries.xml")
    assert [type(e).__name__ for e in events] == ["Document", "Document", "Skip", "Document", "Deletion", "Deletion"]
    skip = events[2]
    assert skip.reason == "no_pmid" and skip.position == 2
    assert [e.position for e in events] == [0, 1, 2, 3, 4, 5]
    dels = events[4:]
    assert [(d.doc_id, d.pmid, d.version) for d in dels] == [("pubmed:80000009", 80000009, 1), ("pubmed:80000010", 80000010, 3)]


def test_deletions_come_after_all_records_even_gzipped(tmp_path):
    path = write(tmp_path / "pubmed26n1400.xml.gz", pubmed_xml(30, deletes=(1003, 99999999)), gz=True, md5="auto")
    events = _events(path)
    assert [type(e) for e in events] == [Document] * 30 + [Deletion] * 2
    assert [e.pmid for e in events[-2:]] == [1003, 99999999]  # a never-seen PMID is still a tombstone


def test_sample_corpus_baseline_and_update():
    root = sample_corpus_path()
    base = _events(root / "pubmed" / "pubmed26n0001.xml.gz")
    assert len(base) == 20 and all(isinstance(e, Document) for e in base)
    assert len({e.pmid for e in base}) == 20
    sections = {p.section for e in base for p in e.passages}
    assert {"title", "abstract", "abstract:BACKGROUND", "other_abstract:spa", "other_abstract:fre"} <= sections
    mathml = next(e for e in base if e.pmid == 90000009)
    assert "Xe129" in mathml.passages[0].text and "inhaled Xe129 gas" in mathml.passages[1].text
    update = _events(root / "pubmed" / "pubmed26n0002.xml.gz")
    ups = [e for e in update if isinstance(e, Document)]
    dels = [e for e in update if isinstance(e, Deletion)]
    assert {e.pmid for e in ups} & {e.pmid for e in base} == {90000003, 90000007}
    assert next(e for e in ups if e.pmid == 90000007).version == 2
    book = next(e for e in ups if e.pmid == 90000022)
    assert book.status == "Book" and book.passages[0] == type(book.passages[0])("title", "Phenylketonuria")
    assert [d.pmid for d in dels] == [90000012, 90000999]
    assert update[-2:] == dels


def test_parse_function_is_pure_on_one_element():
    el = etree.fromstring(pubmed_xml(1)).find("PubmedArticle")
    doc = parse_pubmed_article(el, "x.xml", 7)
    assert doc.position == 7 and doc.passages[0].text == "Record 1000 on BRCA1 in breast cancer."
    missing = parse_pubmed_article(etree.fromstring(b"<PubmedArticle/>"), "x.xml", 0)
    assert isinstance(missing, Skip) and missing.reason == "no_medline_citation"


def test_external_dtd_is_not_loaded_and_unknown_entities_stay_literal(tmp_path):
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY secret "SECRET-FROM-DTD">')
    xml = (
        f'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet SYSTEM "{dtd.as_uri()}">\n<PubmedArticleSet>'
        + pubmed_xml(1).decode().split("<PubmedArticleSet>\n", 1)[1].replace("Record 1000", "Record &secret;")
    )
    path = write(tmp_path / "ext.xml", xml.encode())
    (doc,) = _events(path)
    assert "SECRET-FROM-DTD" not in doc.passages[0].text
    assert doc.passages[0].text.startswith("Record &secret; on BRCA1")
