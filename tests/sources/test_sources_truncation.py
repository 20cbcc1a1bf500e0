"""A file cut at any byte delivers exactly the records whose end tag lies before the cut.

Property tests: a file is parsed whole once (the reference), then cut at 100+ random byte offsets
(fixed seed), as plain XML and as gzip. For each cut, the number of records expected is counted
*independently of the parser*, by a byte search for the records' end tags in the cut bytes (in
the bytes the cut gzip decompresses to, for ``.xml.gz``). Every cut must give exactly those
records, each equal to the same record of the whole file (so no record is delivered with a cut
abstract or a missing DOI), no deletion at all, and a typed :class:`SourceError` naming the file,
the last good record and how far the file was read. ``biogliner parse`` exits 1 on a sample of
the cuts, after printing exactly those records.

The project's own sample corpus runs always; the real NLM files of ``../shared/corpus`` run when
present (``corpus`` marker).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from biogliner.cli import main
from biogliner.cli.parse import event_dict
from biogliner.schema import Deletion
from biogliner.sources import (
    EmptyInputError,
    MalformedXMLError,
    SourceError,
    TruncatedInputError,
    iter_events,
    sample_corpus_path,
)

SEED = 20261205
N_CUTS = 110  # random cuts per file and encoding, on top of the cuts placed at every end tag
CLI_CUTS = 6  # of which this many also go through ``biogliner parse``

PUBMED_ENDS = (b"</PubmedArticle>", b"</PubmedBookArticle>")
LEGACY_ENDS = (b"</MedlineCitation>",)
PMC_ENDS = (b"</article>",)
_XML_DECL = re.compile(rb"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?")


@dataclass
class Case:
    name: str  # file name of the plain XML (``.gz`` is appended for the gzip variant)
    xml: bytes
    ends: tuple[bytes, ...]  # end tags of the records (the independent count)
    root: str  # root element: its start tag complete means the record loop was reached


def _drain(path: Path):
    events, err = [], None
    try:
        for e in iter_events(str(path)):
            events.append(e)
    except SourceError as exc:
        err = exc
    return events, err


def _independent_count(xml_prefix: bytes, ends: tuple[bytes, ...]) -> int:
    return sum(xml_prefix.count(t) for t in ends)


def _json(event) -> dict:
    return json.loads(json.dumps(event_dict(event), ensure_ascii=False))


def check_cuts(tmp_path: Path, case: Case, gz: bool, capsys) -> int:
    """Cut ``case`` at many offsets; return how many cuts were checked."""
    name = case.name + (".gz" if gz else "")
    stored = gzip.compress(case.xml, mtime=0) if gz else case.xml
    (tmp_path / "full").mkdir(exist_ok=True)
    (tmp_path / "cut").mkdir(exist_ok=True)
    full = tmp_path / "full" / name
    full.write_bytes(stored)
    reference, err = _drain(full)
    assert err is None, err
    n_deletions = sum(isinstance(e, Deletion) for e in reference)
    records = reference[: len(reference) - n_deletions]
    assert not any(isinstance(e, Deletion) for e in records)  # deletions come after every record
    # the independent count agrees with the reader on the whole file
    assert _independent_count(case.xml, case.ends) == len(records) > 0

    rng = random.Random(f"{SEED}:{name}")
    offsets = set(rng.sample(range(len(stored)), min(N_CUTS, len(stored))))
    if not gz:  # also right at each record's end: one byte short of its '>' and just after it
        for tag in case.ends:
            for m in re.finditer(re.escape(tag), case.xml):
                offsets.update((m.end() - 1, m.end()))
    cli_offsets = set(rng.sample(sorted(offsets), CLI_CUTS))
    root_open = re.compile(rb"<" + re.escape(case.root.encode()) + rb"(\s[^>]*)?>")
    root_close = f"</{case.root}>".encode()
    cut_path = tmp_path / "cut" / name
    for off in sorted(offsets):
        cut = stored[:off]
        cut_path.write_bytes(cut)
        xml_prefix = zlib.decompressobj(31).decompress(cut) if gz else cut
        n = _independent_count(xml_prefix, case.ends)
        events, err = _drain(cut_path)
        where = f"{name} cut at byte {off}"
        if not gz and root_close in xml_prefix:  # only the trailing newline is missing: a whole document
            assert err is None and events == reference, where
            continue
        assert events == records[:n], where  # exactly the complete records, each whole
        assert err is not None, where
        assert err.source_file == name, where
        if n:
            assert isinstance(err, TruncatedInputError), (where, err)
            assert err.position == n - 1, where
            last = records[n - 1]
            assert err.record_id == (getattr(last, "doc_id", None) or last.record_id), where
            assert f"after record {n - 1}" in str(err), where
        else:
            assert err.position is None and err.record_id is None, where
            assert "before the first record" in str(err), where
        if root_open.search(xml_prefix):  # the records were being streamed
            assert isinstance(err, TruncatedInputError), (where, err)
        elif gz and len(cut) >= 2:
            assert isinstance(err, TruncatedInputError), (where, err)
        else:  # not even the root's start tag: not XML yet
            assert isinstance(err, (MalformedXMLError, EmptyInputError)), (where, err)
        if xml_prefix or (gz and len(cut) >= 2):  # how far the file was read: all of it
            assert err.offset == len(xml_prefix), where
            assert err.raw_offset == (len(cut) if gz else None), where
            assert f"XML read to byte {len(xml_prefix)}" in str(err), where
        if off in cli_offsets:
            code = main(["parse", str(cut_path)])
            out, stderr = capsys.readouterr()
            assert code == 1, where
            assert [json.loads(line) for line in out.splitlines()] == [_json(e) for e in records[:n]], where
            assert f"error: {err}" in stderr.splitlines(), where
    return len(offsets)


def _articleset(*articles: bytes) -> bytes:
    """A legacy ``<pmc-articleset>`` (efetch) holding the given JATS documents' articles."""
    body = b"\n".join(_XML_DECL.sub(b"", a).strip() for a in articles)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<pmc-articleset>' + body + b"</pmc-articleset>\n"


# -- the project's sample corpus: always runs -----------------------------------------------------


def _sample_cases() -> list[Case]:
    sample = sample_corpus_path()
    pmc_v = (sample / "pmc" / "PMC0000001.1" / "PMC0000001.1.xml").read_bytes()
    nxml = (sample / "pmc" / "naegleria-case.nxml").read_bytes()
    return [
        Case("pubmed26n0001.xml", gzip.decompress((sample / "pubmed" / "pubmed26n0001.xml.gz").read_bytes()), PUBMED_ENDS, "PubmedArticleSet"),
        Case("pubmed26n0002.xml", gzip.decompress((sample / "pubmed" / "pubmed26n0002.xml.gz").read_bytes()), PUBMED_ENDS, "PubmedArticleSet"),
        Case("PMC0000001.1.xml", pmc_v, PMC_ENDS, "article"),  # per-version layout, metadata left out
        Case("naegleria-case.nxml", nxml, PMC_ENDS, "article"),
        Case("articleset.xml", _articleset(pmc_v, nxml), PMC_ENDS, "pmc-articleset"),
    ]


@pytest.mark.parametrize("gz", [False, True], ids=["xml", "xml.gz"])
@pytest.mark.parametrize("case", _sample_cases(), ids=lambda c: c.name)
def test_sample_file_cut_anywhere_gives_exactly_the_complete_records(tmp_path, capsys, case, gz):
    assert check_cuts(tmp_path, case, gz, capsys) >= 100


def test_cut_delete_list_applies_none_of_its_deletions(tmp_path):
    xml = gzip.decompress((sample_corpus_path() / "pubmed" / "pubmed26n0002.xml.gz").read_bytes())
    start = xml.index(b"<DeleteCitation>")
    (tmp_path / "whole").mkdir()
    whole, _ = _drain(_write(tmp_path / "whole" / "pubmed26n0002.xml", xml))
    assert [e.doc_id for e in whole if isinstance(e, Deletion)] == ["pubmed:90000012", "pubmed:90000999"]
    first_pmid_end = xml.index(b"</PMID>", start) + len(b"</PMID>")
    for cut in (first_pmid_end, xml.index(b"</DeleteCitation>") + len(b"</DeleteCitation>")):
        events, err = _drain(_write(tmp_path / "pubmed26n0002.xml", xml[:cut]))
        assert isinstance(err, TruncatedInputError)
        assert not any(isinstance(e, Deletion) for e in events)
        assert events == [e for e in whole if not isinstance(e, Deletion)]  # every record, no deletion


def test_record_cut_inside_its_abstract_is_not_delivered(tmp_path):
    """The finding of issue 10: a record cut in its abstract came out as a whole one."""
    xml = gzip.decompress((sample_corpus_path() / "pubmed" / "pubmed26n0001.xml.gz").read_bytes())
    third = xml.index(b"<AbstractText", [m.end() for m in re.finditer(b"</PubmedArticle>", xml)][1])
    events, err = _drain(_write(tmp_path / "pubmed26n0001.xml", xml[: third + 60]))
    assert len(events) == 2 and isinstance(err, TruncatedInputError)
    assert (err.position, err.record_id) == (1, events[1].doc_id)
    assert err.offset == third + 60 and "before <PubmedArticleSet> is closed" in err.reason


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- real NLM files of ../shared/corpus: run when present -------------------------------------------


def _legacy_medline_prefix(corpus: Path, n_records: int = 15) -> bytes:
    """The first ``n_records`` citations of a real MEDLINE 2016 file, then its real delete list:
    a small, well-formed ``MedlineCitationSet`` made only of the file's own bytes."""
    xml = gzip.decompress((corpus / "pubmed" / "medline16n0902.xml.gz").read_bytes())
    ends = [m.end() for m in re.finditer(b"</MedlineCitation>", xml)]
    return xml[: ends[n_records - 1]] + b"\n" + xml[xml.index(b"<DeleteCitation>") :]


@pytest.mark.corpus
@pytest.mark.parametrize("gz", [False, True], ids=["xml", "xml.gz"])
@pytest.mark.parametrize("which", ["medline16n0902-prefix", "test_current_medline", "pone.0000217", "pmc-articleset"])
def test_real_file_cut_anywhere_gives_exactly_the_complete_records(tmp_path, capsys, shared_corpus, which, gz):
    if which == "medline16n0902-prefix":
        case = Case("medline16n0902.xml", _legacy_medline_prefix(shared_corpus), LEGACY_ENDS, "MedlineCitationSet")
    elif which == "test_current_medline":
        xml = gzip.decompress((shared_corpus / "pubmed" / "test_current_medline.xml.gz").read_bytes())
        case = Case("test_current_medline.xml", xml, PUBMED_ENDS, "PubmedArticleSet")
    elif which == "pone.0000217":
        case = Case("pone.0000217.nxml", (shared_corpus / "pmc" / "pone.0000217.nxml").read_bytes(), PMC_ENDS, "article")
    else:
        pmc = shared_corpus / "pmc"
        xml = _articleset(*((pmc / n).read_bytes() for n in ("cc11003.nxml", "pone.0000217.nxml", "ehp-116-1694.nxml")))
        case = Case("articleset.xml", xml, PMC_ENDS, "pmc-articleset")
    assert check_cuts(tmp_path, case, gz, capsys) >= 100
