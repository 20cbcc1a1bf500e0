"""Gold readers on small hand-written files: ids, texts, offsets (text[start:end] == mention), skips."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from biogliner.eval.gold import GoldFormatError, Span
from biogliner.eval.readers import corpus_from_records, detect_format, read_gold

FIX = Path(__file__).parent / "fixtures"
TITLE = "Aspirin reduces breast cancer risk."
ABSTRACT = "Tamoxifen and BRCA1 were studied in MCF-7 cells."


def mentions(doc):
    """(mention text, label) of every gold span, checking the offsets slice the text."""
    out = []
    for s in doc.spans:
        assert 0 <= s.start < s.end <= len(doc.text)
        out.append((doc.text[s.start : s.end], s.label))
    return out


def by_id(corpus):
    return {d.id: d for d in corpus.docs}


# -- BioC -------------------------------------------------------------------------------------
def test_bioc_xml_per_passage():
    c = read_gold(str(FIX / "sample.bioc.xml"))
    assert c.format == "bioc-xml"
    docs = by_id(c)
    assert list(docs) == ["1001#title", "1001#abstract", "1003#title"]
    assert docs["1001#title"].text == TITLE
    assert mentions(docs["1001#title"]) == [("Aspirin", "Chemical"), ("breast cancer", "Disease")]
    # abstract offsets are rebased from the document (36) to the passage (0)
    assert docs["1001#abstract"].text == ABSTRACT
    assert docs["1001#abstract"].spans == (Span(0, 9, "Chemical"), Span(14, 19, "Gene"), Span(36, 41, "CellLine"))
    assert mentions(docs["1001#abstract"]) == [("Tamoxifen", "Chemical"), ("BRCA1", "Gene"), ("MCF-7", "CellLine")]
    assert docs["1003#title"].spans == ()  # an empty document is kept
    # 1002 declares "glucos" for "glucose": the whole document is skipped, naming file and document
    assert [s.record_id for s in c.skipped] == ["1002"]
    reason = str(c.skipped[0])
    assert "sample.bioc.xml" in reason and "1002" in reason and "'glucos'" in reason
    # the two-location annotation is dropped, and counted
    assert c.dropped["discontinuous"] == 1


def test_bioc_xml_per_document():
    c = read_gold(str(FIX / "sample.bioc.xml"), unit="document")
    docs = by_id(c)
    assert list(docs) == ["1001", "1003"]
    assert docs["1001"].text == TITLE + " " + ABSTRACT
    assert docs["1001"].spans[2:] == (Span(36, 45, "Chemical"), Span(50, 55, "Gene"), Span(72, 77, "CellLine"))
    assert [m for m, _ in mentions(docs["1001"])] == ["Aspirin", "breast cancer", "Tamoxifen", "BRCA1", "MCF-7"]


def test_bioc_json_document_level_annotations_and_sentences():
    c = read_gold(str(FIX / "sample.bioc.json"))
    assert c.format == "bioc-json"
    docs = by_id(c)
    assert mentions(docs["1001#abstract"]) == [("Tamoxifen", "Chemical"), ("BRCA1", "Gene"), ("MCF-7", "CellLine")]
    # a passage made of sentences: each sentence is a unit, offsets rebased to the sentence
    assert [d for d in docs if d.startswith("2001")] == ["2001#abstract", "2001#1"]
    assert mentions(docs["2001#abstract"]) == [("Imatinib", "Chemical"), ("BCR-ABL", "Gene")]
    assert docs["2001#1"].text == "It treats leukemia."
    assert mentions(docs["2001#1"]) == [("leukemia", "Disease")]
    # 2002: an annotation running past its passage
    assert [s.record_id for s in c.skipped] == ["2002"]
    assert "not inside any passage" in c.skipped[0].reason
    d = by_id(read_gold(str(FIX / "sample.bioc.json"), unit="document"))["2001"]
    assert d.text == "Imatinib inhibits BCR-ABL. It treats leukemia."
    assert mentions(d) == [("Imatinib", "Chemical"), ("BCR-ABL", "Gene"), ("leukemia", "Disease")]


def test_bioc_xml_refuses_entity_declarations(tmp_path):
    evil = tmp_path / "evil.xml"
    evil.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE collection [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        "<collection><document><id>1</id><passage><offset>0</offset><text>&x;</text></passage></document></collection>"
    )
    with pytest.raises(GoldFormatError, match="evil.xml.*entities"):
        read_gold(str(evil))
    # an undeclared entity reference is not expanded: the document is skipped, not read as empty text
    undeclared = tmp_path / "undeclared.xml"
    undeclared.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE collection SYSTEM "http://127.0.0.1:9/BioC.dtd">\n'
        "<collection><document><id>7</id><passage><offset>0</offset><text>a &y; b</text></passage></document></collection>"
    )
    try:
        c = read_gold(str(undeclared))
    except GoldFormatError as exc:  # libxml2 may refuse the undeclared entity outright
        assert "undeclared.xml" in str(exc)
    else:
        assert c.docs == [] and [s.record_id for s in c.skipped] == ["7"]


def test_bioc_xml_malformed_names_file(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<collection><document>")
    with pytest.raises(GoldFormatError, match="broken.xml: not well-formed"):
        read_gold(str(bad))


# -- PubTator ---------------------------------------------------------------------------------
def test_pubtator_per_passage_and_document():
    c = read_gold(str(FIX / "sample.pubtator"))
    assert c.format == "pubtator"
    docs = by_id(c)
    assert list(docs) == ["1001#title", "1001#abstract", "1003#title", "1003#abstract"]
    assert mentions(docs["1001#abstract"]) == [("Tamoxifen", "Chemical"), ("BRCA1", "Gene"), ("MCF-7", "CellLine")]
    assert docs["1003#abstract"].spans == (Span(0, 9, "Chemical"), Span(17, 32, "Disease"))
    assert [s.record_id for s in c.skipped] == ["1002"] and "'glucos'" in c.skipped[0].reason
    assert c.dropped["relation_line"] == 1
    d = by_id(read_gold(str(FIX / "sample.pubtator"), unit="document"))
    assert d["1003"].text == "Metformin and diabetes. Metformin treats type 2 diabetes."
    assert mentions(d["1003"]) == [
        ("Metformin", "Chemical"),
        ("diabetes", "Disease"),
        ("Metformin", "Chemical"),
        ("type 2 diabetes", "Disease"),
    ]
    assert d["1001"].text == TITLE + " " + ABSTRACT


# -- CoNLL ------------------------------------------------------------------------------------
def test_conll_bio_iob1_bioes():
    c = read_gold(str(FIX / "sample.conll"))
    assert c.format == "conll"
    docs = by_id(c)
    assert list(docs) == ["sample.conll:0", "sample.conll:1", "sample.conll:3"]
    assert docs["sample.conll:0"].text == "Aspirin reduces breast cancer risk ."
    assert mentions(docs["sample.conll:0"]) == [("Aspirin", "Chemical"), ("breast cancer", "Disease")]
    # IOB1: I- opens an entity after O; B-Gene right after B-Gene starts a second entity
    assert docs["sample.conll:1"].spans == (
        Span(0, 5, "Gene"),
        Span(10, 15, "Gene"),
        Span(26, 30, "Gene"),
        Span(31, 39, "Gene"),
    )
    assert [m for m, _ in mentions(docs["sample.conll:1"])] == ["BRCA1", "BRCA2", "TP53", "MDM2 p53"]
    assert mentions(docs["sample.conll:3"]) == [("NaCl", "Chemical"), ("sodium chloride", "Chemical")]
    assert [s.record_id for s in c.skipped] == ["sample.conll:2"]
    assert "X-Foo" in c.skipped[0].reason and "sample.conll:18" in c.skipped[0].reason


# -- JSONL and GLiNER -------------------------------------------------------------------------
def test_jsonl_spans():
    c = read_gold(str(FIX / "sample.jsonl"))
    assert c.format == "jsonl"
    docs = by_id(c)
    assert list(docs) == ["j1", "j2", "j4"]
    assert mentions(docs["j1"]) == [("Aspirin", "Chemical"), ("breast cancer", "Disease")]
    assert docs["j2"].spans == ()
    assert mentions(docs["j4"]) == [("glucose", "Chemical")]
    skipped = {s.record_id: s.reason for s in c.skipped}
    assert set(skipped) == {"j3", "line 4"}
    assert "does not lie within the text" in skipped["j3"]
    assert "sample.jsonl:4: not valid JSON" in skipped["line 4"]


def test_gliner_json():
    c = read_gold(str(FIX / "sample.gliner.json"))
    assert c.format == "gliner"
    docs = by_id(c)
    assert list(docs) == ["sample.gliner.json:0", "sample.gliner.json:1"]
    assert docs["sample.gliner.json:0"].text == "Aspirin reduces breast cancer risk ."
    assert mentions(docs["sample.gliner.json:0"]) == [("Aspirin", "Chemical"), ("breast cancer", "Disease")]
    assert [s.record_id for s in c.skipped] == ["sample.gliner.json:2"]


# -- detection, compression, errors -----------------------------------------------------------
@pytest.mark.parametrize(
    "name,fmt",
    [
        ("sample.bioc.xml", "bioc-xml"),
        ("sample.bioc.json", "bioc-json"),
        ("sample.pubtator", "pubtator"),
        ("sample.conll", "conll"),
        ("sample.jsonl", "jsonl"),
        ("sample.gliner.json", "gliner"),
    ],
)
def test_detect_by_extension_and_by_content(name, fmt):
    data = (FIX / name).read_bytes()
    assert detect_format(name, data) == fmt
    assert detect_format("gold.txt", data) == fmt  # content alone


def test_gzip_and_format_override(tmp_path):
    gz = tmp_path / "gold.pubtator.gz"
    gz.write_bytes(gzip.compress((FIX / "sample.pubtator").read_bytes()))
    assert len(read_gold(str(gz)).docs) == 4
    plain = tmp_path / "gold.dat"
    shutil.copy(FIX / "sample.jsonl", plain)
    assert read_gold(str(plain), fmt="jsonl").format == "jsonl"
    with pytest.raises(GoldFormatError, match="unknown format"):
        read_gold(str(plain), fmt="brat")
    with pytest.raises(GoldFormatError, match="no such file"):
        read_gold(str(tmp_path / "missing.jsonl"))


def test_hub_name_offline_gives_a_clear_error():
    with pytest.raises(GoldFormatError, match="(?s)hub:bigbio/no-such-corpus.*network"):
        read_gold("hub:bigbio/no-such-corpus", dataset_config="x_bigbio_kb")


def test_records_bigbio_kb_and_classlabel_tags():
    datasets = pytest.importorskip("datasets")
    kb = {
        "id": "0",
        "document_id": "1001",
        "passages": [
            {"id": "p0", "type": "title", "text": [TITLE], "offsets": [[0, 35]]},
            {"id": "p1", "type": "abstract", "text": [ABSTRACT], "offsets": [[36, 84]]},
        ],
        "entities": [
            {"id": "e0", "type": "Chemical", "text": ["Aspirin"], "offsets": [[0, 7]], "normalized": []},
            {"id": "e1", "type": "Gene", "text": ["BRCA1"], "offsets": [[50, 55]], "normalized": []},
            {"id": "e2", "type": "Disease", "text": ["breast", "risk"], "offsets": [[16, 22], [30, 34]], "normalized": []},
        ],
    }
    c = corpus_from_records([kb], "mem", unit="passage")
    docs = by_id(c)
    assert c.format == "bigbio-kb"
    assert mentions(docs["1001#title"]) == [("Aspirin", "Chemical")]
    assert mentions(docs["1001#abstract"]) == [("BRCA1", "Gene")]
    assert c.dropped["discontinuous"] == 1
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-Disease", "I-Disease"])),
        }
    )
    ds = datasets.Dataset.from_list(
        [{"id": "s0", "tokens": ["Breast", "cancer", "kills", "."], "ner_tags": [1, 2, 0, 0]}], features=features
    )
    c = corpus_from_records(ds, "mem", features=ds.features)
    assert mentions(c.docs[0]) == [("Breast cancer", "Disease")]
    with pytest.raises(GoldFormatError, match="integer tags without ClassLabel"):
        corpus_from_records([{"id": "s0", "tokens": ["a"], "ner_tags": [1]}], "mem")


def test_read_gold_from_s3(s3_bucket):
    """Gold files are read through biogliner.io: an s3:// URL works like a local path."""
    import fsspec

    url = f"{s3_bucket}/gold/sample.pubtator"
    with fsspec.open(url, "wb") as fh:
        fh.write((FIX / "sample.pubtator").read_bytes())
    c = read_gold(url)
    assert c.format == "pubtator" and c.source == url
    assert [d.id for d in c.docs] == ["1001#title", "1001#abstract", "1003#title", "1003#abstract"]
    assert mentions(by_id(c)["1001#abstract"])[1] == ("BRCA1", "Gene")
    with pytest.raises(GoldFormatError, match="no such file"):
        read_gold(f"{s3_bucket}/gold/missing.jsonl")


def test_missing_relative_path_is_not_taken_for_a_hub_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GoldFormatError, match="data/test.json: no such file"):
        read_gold("data/test.json")
    with pytest.raises(GoldFormatError, match="(?s)hub:bigbio/bc5cdr.*cannot load"):
        read_gold("bigbio/bc5cdr")  # no such directory: a hub name, offline here


def test_pubtator_empty_abstract_is_not_a_document(tmp_path):
    f = tmp_path / "t.pubtator"
    f.write_text("7|t|Aspirin works.\n7|a|\n7\t0\t7\tAspirin\tChemical\tD001241\n")
    c = read_gold(str(f))
    assert [d.id for d in c.docs] == ["7#title"] and mentions(c.docs[0]) == [("Aspirin", "Chemical")]
    assert [d.text for d in read_gold(str(f), unit="document").docs] == ["Aspirin works. "]
