"""PMC (JATS) reader: shared corpus files, the bundled sample, metadata filters."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from biogliner.schema import Document, Skip
from biogliner.sources import ChecksumError, PmcFilter, iter_events, sample_corpus_path
from lxml import etree

BLOCKS = {"fig", "table-wrap", "list", "boxed-text", "disp-quote", "supplementary-material", "def-list", "tex-math", "table"}
NOT_READ = {"ref-list", "table", "front", "front-stub"}  # p under these are not body/caption text


def _norm(s: str) -> str:
    return re.sub(r"[ \t\n\r]+", " ", s).strip()


def _p_text(p) -> str:
    """Independent text of a paragraph: a copy with nested block elements removed (tails kept)."""
    p = copy.deepcopy(p)
    for el in list(p.iter()):
        if el is not p and isinstance(el.tag, str) and etree.QName(el).localname in BLOCKS:
            parent = el.getparent()
            if parent is None:
                continue
            tail = el.tail or ""
            prev = el.getprevious()
            if prev is not None:
                prev.tail = (prev.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
            parent.remove(el)
    return _norm("".join(p.itertext()))


def _expected_paragraphs(article):
    """(caption paragraph texts, other paragraph texts) of the body, back, floats and sub-articles."""
    caption, other = Counter(), Counter()
    for p in article.iter("p"):
        anc = [a.tag for a in p.iterancestors()]
        if any(t in NOT_READ for t in anc) and "abstract" not in anc:
            continue
        text = _p_text(p)
        if text:
            (caption if ("caption" in anc or "table-wrap-foot" in anc) and "boxed-text" not in anc else other)[text] += 1
    return caption, other


def _load(path: Path):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(path), parser).getroot()
    return root if root.tag == "article" else root.find("article")


def _passage_counters(doc: Document):
    caption = Counter(p.text for p in doc.passages if p.section.startswith("caption:"))
    other = Counter(p.text for p in doc.passages if not p.section.startswith(("caption:", "heading:", "title")))
    return caption, other


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name", ["pone.0046493.nxml", "1471-2180-11-174.nxml", "ehp-116-1694.nxml", "pone.0000217.nxml", "cc11003.nxml", "biopython_efetch_pmc.xml"]
)
def test_every_paragraph_exactly_once_and_captions_apart(shared_corpus, name):
    path = shared_corpus / "pmc" / name
    (doc,) = list(iter_events(str(path)))
    exp_caption, exp_other = _expected_paragraphs(_load(path))
    got_caption, got_other = _passage_counters(doc)
    for text, n in exp_other.items():
        assert got_other[text] == n, (name, text[:80])  # every p outside captions, never twice
        assert got_caption[text] == exp_caption[text]  # ... and not also as a caption
    for text, n in exp_caption.items():
        assert got_caption[text] == n, (name, text[:80])  # caption paragraphs only as captions
        assert got_other[text] == exp_other[text]
    # nothing else sneaks in as body text (e.g. table cells or references)
    assert sum(got_other.values()) == sum(exp_other.values())
    assert doc.passages[0].section == "title"


@pytest.mark.corpus
def test_floats_group_captions_present(shared_corpus):
    path = shared_corpus / "pmc" / "ehp-116-1694.nxml"
    (doc,) = list(iter_events(str(path)))
    floats = _load(path).find("floats-group")
    caption_texts = [_p_text(p) for p in floats.iter("p")]
    assert len(caption_texts) == 6
    fig_passages = [p.text for p in doc.passages if p.section == "caption:fig"]
    for text in caption_texts:
        assert text in fig_passages
    assert (doc.doc_id, doc.pmid, doc.year) == ("pmc:PMC2599765.1", 19079722, 2008)
    assert doc.license == "http://creativecommons.org/publicdomain/mark/1.0/"


@pytest.mark.corpus
def test_corpus_metadata_and_text_details(shared_corpus):
    (doc,) = list(iter_events(str(shared_corpus / "pmc" / "pone.0046493.nxml")))
    assert (doc.doc_id, doc.pmid, doc.version) == ("pmc:PMC3460867.1", 23029536, 1)  # legacy nxml: version 1
    texts = " ".join(p.text for p in doc.passages)
    assert "α/β" in texts or "α" in texts  # numeric character references decoded
    refs = _load(shared_corpus / "pmc" / "pone.0046493.nxml").find("back/ref-list")
    ref_title = _norm("".join(refs.find(".//article-title").itertext()))
    assert ref_title not in texts  # references are not NER input
    (efetch,) = list(iter_events(str(shared_corpus / "pmc" / "biopython_efetch_pmc.xml")))
    assert efetch.status == "correction" and efetch.pmid == 34527728 and efetch.pmcid == "PMC8435807"
    assert efetch.license == "https://creativecommons.org/licenses/by-nc/4.0/"
    (cc,) = list(iter_events(str(shared_corpus / "pmc" / "cc11003.nxml")))
    assert cc.pmid is None and cc.status == "abstract" and cc.doc_id.startswith("pmc:PMC")


def _sample_pmc() -> Path:
    return sample_corpus_path() / "pmc" / "PMC0000001.1" / "PMC0000001.1.xml"


def test_sample_new_layout_article():
    (doc,) = list(iter_events(str(_sample_pmc())))
    assert (doc.doc_id, doc.pmid, doc.version, doc.license, doc.year) == ("pmc:PMC0000001.1", 90000101, 1, "CC BY", 2025)
    got = [(p.section, p.text) for p in doc.passages]
    assert ("abstract:Methods", "We derived 24 organoid lines from biopsies of resistant tumours and measured MET copy number by digital PCR.") in got
    # a figure inside a paragraph: its caption is a caption, and the paragraph reads around it
    assert ("body:Methods > Organoid culture", "Cell viability was measured after 6 days with a luminescent ATP assay.") in got
    assert ("caption:fig", "HCC827 cells were used as a sensitive control.") in got
    assert ("caption:fig", "Savolitinib plus osimertinib reduced ERK phosphorylation in ORG-03.") in got  # floats-group
    assert ("caption:table", "Copy number by digital PCR.") in got  # table footnote
    assert ("body:Methods > Organoid culture", "Noggin and R-spondin-1 conditioned medium.") in got  # list item
    assert ("body:Results > Key points", "MET inhibition restores osimertinib response in MET-amplified organoids.") in got
    assert any("ratio of copies MET/CEP7 above 2" in t for _, t in got)  # inline MathML
    assert ("sub_article:body", "The authors should test crizotinib as a second MET inhibitor.") in got
    alltext = " ".join(t for _, t in got)
    assert "ORG-03 MET amplification" not in alltext and "Line Alteration" not in alltext  # no table cells
    assert "Reference text" not in alltext
    assert len(got) == len(set(got))


def test_sample_legacy_nxml_defaults_to_version_1():
    (doc,) = list(iter_events(str(sample_corpus_path() / "pmc" / "naegleria-case.nxml")))
    assert (doc.doc_id, doc.version, doc.pmid, doc.year) == ("pmc:PMC0000002.1", 1, 90000102, 2012)
    assert doc.passages[-1] == type(doc.passages[-1])("body:Discussion", "Early miltefosine treatment has been associated with survival in a few reported cases.")


@pytest.fixture()
def pmc_copy(tmp_path):
    """A writable copy of the sample PMC version folder; returns (xml path, metadata dict, writer)."""
    folder = tmp_path / "PMC0000001.1"
    shutil.copytree(_sample_pmc().parent, folder)
    xml = folder / "PMC0000001.1.xml"
    meta_path = folder / "PMC0000001.1.json"
    meta = json.loads(meta_path.read_text())

    def write_meta(**changes):
        meta_path.write_text(json.dumps({**meta, **changes}))

    return xml, meta, write_meta


@pytest.mark.parametrize(
    ("changes", "flt", "reason"),
    [
        ({"is_pmc_openaccess": False}, PmcFilter(), "not_open_access"),
        ({"is_retracted": True}, PmcFilter(), "retracted"),
        ({"license_code": "CC BY-NC"}, PmcFilter(licenses=frozenset({"CC BY", "CC0"})), "license_not_allowed"),
        ({"is_manuscript": True}, PmcFilter(exclude_manuscripts=True), "manuscript"),
    ],
)
def test_metadata_filters_skip_with_reason(pmc_copy, changes, flt, reason):
    xml, _, write_meta = pmc_copy
    write_meta(**changes)
    (event,) = list(iter_events(str(xml), pmc_filter=flt))
    assert isinstance(event, Skip)
    assert (event.reason, event.record_id, event.source_file) == (reason, "pmc:PMC0000001.1", "PMC0000001.1.xml")


def test_metadata_filters_let_allowed_versions_through(pmc_copy):
    xml, _, write_meta = pmc_copy
    write_meta(license_code="cc by")  # case-insensitive allow-list
    (doc,) = list(iter_events(str(xml), pmc_filter=PmcFilter(licenses=frozenset({"CC BY"}))))
    assert isinstance(doc, Document)
    write_meta(is_retracted=True)
    (doc,) = list(iter_events(str(xml), pmc_filter=PmcFilter(exclude_retracted=False)))
    assert isinstance(doc, Document)


def test_missing_metadata_and_metadata_folder(pmc_copy, tmp_path):
    xml, meta, _ = pmc_copy
    (xml.parent / "PMC0000001.1.json").unlink()
    (doc,) = list(iter_events(str(xml)))
    assert isinstance(doc, Document)  # read, with a warning
    (skip,) = list(iter_events(str(xml), pmc_filter=PmcFilter(require_metadata=True)))
    assert skip.reason == "no_metadata"
    # bucket layout: metadata/PMC….json next to the version folders
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "PMC0000001.1.json").write_text(json.dumps({**meta, "is_pmc_openaccess": False}))
    (skip,) = list(iter_events(str(xml)))
    assert skip.reason == "not_open_access"


def test_metadata_xml_md5_is_checked(pmc_copy):
    xml, meta, write_meta = pmc_copy
    write_meta(xml_url=meta["xml_url"].split("?")[0] + "?md5=" + "0" * 32)
    with pytest.raises(ChecksumError) as err:
        list(iter_events(str(xml)))
    assert err.value.source_file == "PMC0000001.1.xml" and "0" * 32 in str(err.value)
    assert list(iter_events(str(xml), verify_md5=False))  # opt-out


def test_pmc_articleset_with_several_articles_and_namespaced_oai(tmp_path):
    body = _sample_pmc().read_text().split("?>", 1)[1].split("\n", 2)[2]  # drop the prolog + doctype
    second = body.replace("PMC0000001.1", "PMC0000001.2")
    path = tmp_path / "efetch.xml"
    path.write_text(f'<?xml version="1.0"?>\n<pmc-articleset>{body}{second}</pmc-articleset>')
    docs = list(iter_events(str(path)))
    assert [d.doc_id for d in docs] == ["pmc:PMC0000001.1", "pmc:PMC0000001.2"] and [d.position for d in docs] == [0, 1]
    oai = body.replace("<article ", '<article xmlns="https://jats.nlm.nih.gov/ns/archiving/1.3/" ', 1)
    path = tmp_path / "oai.xml"
    path.write_text(f'<?xml version="1.0"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><GetRecord><record><metadata>{oai}</metadata></record></GetRecord></OAI-PMH>')
    (doc,) = list(iter_events(str(path)))
    assert doc.doc_id == "pmc:PMC0000001.1"
    assert [p.section for p in doc.passages] == [p.section for p in docs[0].passages]


def test_hand_written_jats_edge_cases_exact_passages(fixtures_dir):
    """Formulas (MathML kept, LaTeX dropped), lists and tables inside paragraphs, fig-groups,
    boxes, media captions, appendices, nested sub-articles: every text once, in order."""
    (doc,) = list(iter_events(str(fixtures_dir / "jats_edge_cases.nxml")))
    assert (doc.doc_id, doc.version, doc.year) == ("pmc:PMC9000001.1", 1, 2024)
    assert [(p.section, p.text) for p in doc.passages] == [
        ("title", "Edge cases of JATS text extraction"),
        ("subtitle", "A hand-written fixture"),
        ("trans_title:de", "Randfälle der Textextraktion"),
        ("abstract:summary", "A plain-language summary about TP53."),
        ("abstract", "The main abstract."),
        ("trans_abstract:de", "Die Zusammenfassung."),
        ("heading:body:Methods", "Methods"),
        ("body:Methods", "Concentrations follow C=n/V where V is the volume."),
        ("body:Methods", "E=mc2"),
        ("body:Methods", "Cells were grown in three media: and then counted."),
        ("body:Methods", "DMEM with 10% FBS;"),
        ("body:Methods", "RPMI-1640;"),
        ("heading:body:Methods > Abbreviations", "Abbreviations"),
        ("body:Methods > Abbreviations", "FBS"),
        ("body:Methods > Abbreviations", "fetal bovine serum"),
        ("body:Methods", "Only italic text in a paragraph."),
        ("body:Methods", "The results are in below."),
        ("caption:table", "Counts per medium."),
        ("heading:body:Results", "Results"),
        ("caption:fig", "Two panels of HeLa cells."),
        ("caption:fig", "Panel A: untreated."),
        ("caption:fig", "Panel B: cisplatin."),
        ("heading:body:Results > Box 1. Key terms", "Box 1. Key terms"),
        ("body:Results > Box 1. Key terms", "Apoptosis is programmed cell death."),
        ("caption:supplementary", "Raw counts."),
        ("caption:supplementary", "Click here for the data file."),
        ("heading:back:Appendix A", "Appendix A"),
        ("back:Appendix A", "Primer sequences for GAPDH."),
        ("sub_article:title", "Übersetzung"),
        ("sub_article:abstract", "Übersetzte Zusammenfassung."),
        ("sub_article:body", "Übersetzter Text."),
        ("sub_article:title", "Reply"),
        ("sub_article:body", "Reply text."),
    ]
