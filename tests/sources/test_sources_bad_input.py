"""Bad input: every case is a typed SourceError naming the file and the last good record, raised
after the good events before it were delivered."""

from __future__ import annotations

import gzip
import os
import pickle
import zlib

import pytest
from biogliner.schema import Deletion, Document
from biogliner.sources import (
    ChecksumError,
    EmptyInputError,
    MalformedXMLError,
    SourceError,
    TruncatedInputError,
    UnknownFormatError,
    UnsafeXMLError,
    iter_events,
)
from sources_fixtures import pubmed_xml, write


def _drain(path, **kw):
    """(events delivered, error raised)."""
    events = []
    with pytest.raises(SourceError) as err:
        for e in iter_events(str(path), **kw):
            events.append(e)
    return events, err.value


def test_truncated_gzip_delivers_good_records_then_names_the_last(tmp_path):
    data = gzip.compress(pubmed_xml(3000), mtime=0)
    path = tmp_path / "pubmed26n0100.xml.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    events, err = _drain(path)
    assert isinstance(err, TruncatedInputError)
    assert len(events) > 100 and all(isinstance(e, Document) for e in events)
    assert err.source_file == "pubmed26n0100.xml.gz"
    assert err.position == events[-1].position == len(events) - 1
    assert err.record_id == events[-1].doc_id
    # how far the file was read: every byte of the cut gzip file, and all the XML it decompresses to
    assert err.raw_offset == len(data) * 2 // 3
    assert err.offset == len(zlib.decompressobj(31).decompress(data[: len(data) * 2 // 3]))
    assert str(err).startswith(
        f"pubmed26n0100.xml.gz: truncated or corrupt input after record {err.position} ({err.record_id}), "
        f"XML read to byte {err.offset} (gzip file read to byte {err.raw_offset}): EOFError"
    )


def test_corrupt_gzip_crc(tmp_path):
    data = bytearray(gzip.compress(pubmed_xml(50), mtime=0))
    data[-8] ^= 0xFF  # CRC32 of the trailer
    path = tmp_path / "crc.xml.gz"
    path.write_bytes(bytes(data))
    events, err = _drain(path)
    assert isinstance(err, TruncatedInputError) and len(events) == 50 and err.position == 49


def test_malformed_xml_mid_file(tmp_path):
    path = write(tmp_path / "pubmed26n0101.xml", pubmed_xml(100, start=5000, broken_after=41))
    events, err = _drain(path)
    assert isinstance(err, MalformedXMLError)
    assert [e.pmid for e in events] == list(range(5000, 5042))
    assert (err.position, err.record_id) == (41, "pubmed:5041")
    assert str(err).startswith(f"pubmed26n0101.xml: malformed XML after record 41 (pubmed:5041), XML read to byte {err.offset}: ")
    assert err.raw_offset is None  # plain XML: the file's bytes are the XML's
    assert "mismatch" in err.reason  # lxml's own message


def test_file_cut_mid_record_uncompressed(tmp_path):
    data = pubmed_xml(20)
    cut = data[: len(data) // 2]
    path = write(tmp_path / "cut.xml", cut)
    events, err = _drain(path)
    assert isinstance(err, TruncatedInputError) and len(events) == cut.count(b"</PubmedArticle>") >= 5
    assert err.position == len(events) - 1 and err.offset == len(cut)


def test_junk_after_a_complete_document_is_malformed_not_truncated(tmp_path):
    path = write(tmp_path / "junk-after.xml", pubmed_xml(3) + b"<!-- a comment never closed")
    events, err = _drain(path)
    assert isinstance(err, MalformedXMLError) and not isinstance(err, TruncatedInputError)
    assert len(events) == 3 and "after the end of the root element" in err.reason


def test_unknown_root(tmp_path):
    path = write(tmp_path / "pubmed26n0102.xml", b'<?xml version="1.0"?>\n<rss><channel><item>x</item></channel></rss>')
    events, err = _drain(path)
    assert isinstance(err, UnknownFormatError) and events == []
    assert err.position is None and err.record_id is None
    assert str(err) == (
        "pubmed26n0102.xml: unknown format before the first record: root element <rss> is neither PubMed "
        "(PubmedArticleSet, MedlineCitationSet) nor PMC (pmc-articleset, article)"
    )


def test_format_detected_by_root_not_by_name(tmp_path):
    # a PubMed file with a PMC-looking name, and a JATS article with a PubMed-looking name
    events = list(iter_events(str(write(tmp_path / "PMC1.1.xml", pubmed_xml(2)))))
    assert [e.doc_id for e in events] == ["pubmed:1000", "pubmed:1001"]
    jats = b'<article><front><article-meta><article-id pub-id-type="pmc">77</article-id><title-group><article-title>T</article-title></title-group></article-meta></front></article>'
    (doc,) = list(iter_events(str(write(tmp_path / "pubmed26n0001.xml.gz", jats, gz=True))))
    assert doc.doc_id == "pmc:PMC77.1"


@pytest.mark.parametrize("gz", [False, True])
def test_empty_file(tmp_path, gz):
    path = write(tmp_path / ("empty.xml.gz" if gz else "empty.xml"), b"", gz=gz)
    events, err = _drain(path)
    assert isinstance(err, EmptyInputError) and events == [] and err.source_file == path.name


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + os.urandom(2000), b"just some text, not xml\n", b"   \n\n  "])
def test_non_xml_bytes(tmp_path, data):
    path = write(tmp_path / "junk.xml", data)
    events, err = _drain(path)
    assert isinstance(err, MalformedXMLError) and events == [] and err.source_file == "junk.xml"


def test_md5_mismatch_after_records_but_before_deletions(tmp_path):
    path = write(tmp_path / "pubmed26n0103.xml.gz", pubmed_xml(10, deletes=(1001,)), gz=True, md5="0" * 32)
    events, err = _drain(path)
    assert isinstance(err, ChecksumError)
    assert len(events) == 10 and not any(isinstance(e, Deletion) for e in events)  # no deletes from a bad file
    assert (err.position, err.record_id) == (9, "pubmed:1009")
    assert "pubmed26n0103.xml.gz.md5" in err.reason
    assert len(list(iter_events(str(path), verify_md5=False))) == 11


def test_md5_match_and_unreadable_sidecar(tmp_path):
    path = write(tmp_path / "pubmed26n0104.xml.gz", pubmed_xml(3, deletes=(5,)), gz=True, md5="auto")
    assert len(list(iter_events(str(path)))) == 4
    path.with_name(path.name + ".md5").write_text("garbage\n")
    events, err = _drain(path)
    assert isinstance(err, ChecksumError) and events == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version="1">1</PMID><Article><ArticleTitle>&lol9;</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>
"""


def test_billion_laughs_refused(tmp_path):
    path = write(tmp_path / "lol.xml", BILLION_LAUGHS)
    events, err = _drain(path)
    assert isinstance(err, UnsafeXMLError) and events == []
    assert "lol1, lol2" in err.reason and err.source_file == "lol.xml"


def test_external_entity_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for target in ("file:///etc/passwd", secret.as_uri()):
        xml = (
            f'<?xml version="1.0"?>\n<!DOCTYPE article [<!ENTITY xxe SYSTEM "{target}">]>\n'
            '<article><front><article-meta><article-id pub-id-type="pmc">1</article-id>'
            "<title-group><article-title>&xxe;</article-title></title-group></article-meta></front></article>"
        ).encode()
        path = write(tmp_path / "xxe.nxml", xml)
        events, err = _drain(path)
        assert isinstance(err, UnsafeXMLError) and events == []
        assert "root:" not in str(err) and "TOP-SECRET" not in str(err)


def test_source_errors_pickle_for_ray(tmp_path):
    err = MalformedXMLError("f.xml", "boom", position=3, record_id="pubmed:9", offset=1234, raw_offset=99)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is MalformedXMLError and str(back) == str(err) and back.position == 3
    assert (back.offset, back.raw_offset) == (1234, 99)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError) as err:
        list(iter_events(str(tmp_path / "nope.xml.gz")))
    assert err.value.source_file == "nope.xml.gz"
