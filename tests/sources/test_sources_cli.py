"""``biogliner parse`` on local files and on S3 (a real S3 server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import json

from biogliner.cli import main
from biogliner.sources import sample_corpus_path
from sources_fixtures import pubmed_xml, write


def _run(capsys, *argv):
    code = main(["parse", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.splitlines()


def test_parse_sample_corpus_local(capsys):
    code, rows, err = _run(capsys, str(sample_corpus_path()))
    assert code == 0
    assert len(rows) == 28
    assert {r["op"] for r in rows} == {"upsert", "delete"}
    first = next(r for r in rows if r["doc_id"] == "pubmed:90000005")
    assert set(first) >= {"doc_id", "op", "pmid", "version", "source_file", "position", "passages", "year", "journal", "status"}
    assert first["source_file"] == "pubmed26n0001.xml.gz" and first["pmid"] == 90000005
    assert first["passages"][0] == {
        "section": "title",
        "text": "Gefitinib sensitivity of EGFR exon 19 deletion in A549 and PC-9 lung adenocarcinoma cells.",
    }
    deletes = [r for r in rows if r["op"] == "delete"]
    assert [r["doc_id"] for r in deletes] == ["pubmed:90000012", "pubmed:90000999"]
    assert err[-1] == "parsed 4 file(s): 26 upserts (1 PubmedBookArticle), 2 deletes, 0 skips, 0 failed file(s)"


def test_parse_skips_are_counted_on_stderr_or_in_a_file(capsys, tmp_path):
    pmc = sample_corpus_path() / "pmc"
    code, rows, err = _run(capsys, str(pmc), "--licenses", "CC0")
    assert code == 0 and [r["doc_id"] for r in rows] == ["pmc:PMC0000002.1"]  # legacy nxml has no metadata
    assert err[0] == "skip 1: PMC0000001.1.xml[0] pmc:PMC0000001.1: license_not_allowed (license_code='CC BY')"
    assert "1 skips (license_not_allowed=1)" in err[-1]
    skips = tmp_path / "skips.jsonl"
    code, rows, err = _run(capsys, str(pmc), "--licenses", "CC0", "--skips", str(skips))
    assert len(err) == 1 and json.loads(skips.read_text())["reason"] == "license_not_allowed"


def test_parse_error_keeps_events_and_goes_on(capsys, tmp_path):
    bad = write(tmp_path / "a_pubmed26n0001.xml", pubmed_xml(10, broken_after=4))
    good = write(tmp_path / "b_pubmed26n0002.xml.gz", pubmed_xml(3, start=7000), gz=True)
    code, rows, err = _run(capsys, str(bad), str(good))
    assert code == 1
    assert [r["pmid"] for r in rows] == [1000, 1001, 1002, 1003, 1004, 7000, 7001, 7002]
    assert err[0].startswith("error: a_pubmed26n0001.xml: malformed XML after record 4 (pubmed:1004), XML read to byte ")
    assert err[-1] == "parsed 2 file(s): 8 upserts, 0 deletes, 0 skips, 1 failed file(s)"


def test_parse_missing_input(capsys, tmp_path):
    code, rows, err = _run(capsys, str(tmp_path / "nothing-*.xml"))
    assert code == 2 and rows == [] and "no input matches" in err[0]


def test_parse_on_s3(capsys, s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem()
    root = sample_corpus_path()
    fs.put(str(root / "pubmed"), f"{s3_bucket}/pubmed", recursive=True)
    raw = pubmed_xml(5, start=3000)
    with fs.open(f"{s3_bucket}/plain/pubmed26n0003.xml", "wb") as f:
        f.write(raw)
    code, rows, err = _run(capsys, f"{s3_bucket}/pubmed/", f"{s3_bucket}/plain/pubmed26n0003.xml")
    assert code == 0, err
    assert len(rows) == 20 + 6 + 5
    assert rows[0]["source_file"] == "pubmed26n0001.xml.gz" and rows[-1]["doc_id"] == "pubmed:3004"
    # the md5 sidecar is verified on S3 too
    data = gzip.compress(raw, mtime=0)
    with fs.open(f"{s3_bucket}/bad/pubmed26n0004.xml.gz", "wb") as f:
        f.write(data)
    with fs.open(f"{s3_bucket}/bad/pubmed26n0004.xml.gz.md5", "wb") as f:
        f.write(b"MD5(pubmed26n0004.xml.gz)= " + b"f" * 32 + b"\n")
    code, rows, err = _run(capsys, f"{s3_bucket}/bad/pubmed26n0004.xml.gz")
    assert code == 1 and len(rows) == 5
    assert err[0].startswith("error: pubmed26n0004.xml.gz: checksum mismatch after record 4 (pubmed:3004)")
