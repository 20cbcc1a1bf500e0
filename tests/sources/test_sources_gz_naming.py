"""The gzip reader (data first, damage after) and input naming helpers."""

from __future__ import annotations

import gzip
import io
import random

import pytest
from biogliner.sources import input_name, is_input_file, pubmed_file_order, sample_corpus_path
from biogliner.sources.gz import GzipStream
from biogliner.sources.stream import parse_md5_sidecar


def _read_all(stream, n=4096):
    out = []
    while True:
        chunk = stream.read(n)
        if not chunk:
            return b"".join(out)
        out.append(chunk)


def _payload() -> bytes:
    rng = random.Random(7)
    return b"".join(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) * rng.randint(1, 500) for _ in range(100))


@pytest.mark.parametrize("n", [1000, 65536])
def test_gzip_stream_matches_gzip_module(n):
    data = _payload()
    for comp in (gzip.compress(data), gzip.compress(data[:999]) + gzip.compress(data[999:]), gzip.compress(data) + b"\0" * 7):
        assert _read_all(GzipStream(io.BytesIO(comp)), n) == data


def test_gzip_stream_gives_every_byte_before_the_error():
    data = _payload()
    comp = gzip.compress(data)
    stream = GzipStream(io.BytesIO(comp[: len(comp) * 3 // 4]))
    got = []
    with pytest.raises(EOFError):
        while True:
            chunk = stream.read(65536)
            got.append(chunk)
            assert chunk
    assert data.startswith(b"".join(got)) and len(b"".join(got)) > len(data) // 2
    bad = bytearray(comp)
    bad[-5] ^= 1  # length field
    stream = GzipStream(io.BytesIO(bytes(bad)))
    got = []
    with pytest.raises(gzip.BadGzipFile):
        while True:
            got.append(stream.read(1 << 20))
    assert b"".join(got) == data  # all data delivered, then the error


def test_input_name():
    assert input_name("s3://b/pubmed/baseline/pubmed26n0001.xml.gz") == "pubmed26n0001"
    assert input_name("/data/updatefiles/pubmed26n1400.xml") == "pubmed26n1400"
    assert input_name("s3://pmc-oa-opendata/PMC123456.1/PMC123456.1.xml") == "PMC123456.1"
    assert input_name("corpus/pmc/pone.0046493.nxml") == "pone.0046493"
    assert input_name("x/PMC9.2.xml?md5=abc") == "PMC9.2"


def test_pubmed_file_order_replays_baseline_then_updates():
    names = ["pubmed26n1400.xml.gz", "pubmed25n1274.xml.gz", "pubmed26n0002.xml.gz", "s3://b/pubmed26n1334.xml.gz", "medline16n0902.xml.gz"]
    assert sorted(names, key=pubmed_file_order) == [
        "medline16n0902.xml.gz",
        "pubmed25n1274.xml.gz",
        "pubmed26n0002.xml.gz",
        "s3://b/pubmed26n1334.xml.gz",
        "pubmed26n1400.xml.gz",
    ]
    assert pubmed_file_order("pubmed26n0001") == (2026, 1)
    with pytest.raises(ValueError):
        pubmed_file_order("PMC1.1.xml")


def test_sidecar_formats_and_input_filter():
    assert parse_md5_sidecar("MD5(pubmed26n0001.xml.gz)= 0123456789ABCDEF0123456789abcdef\n") == "0123456789abcdef0123456789abcdef"
    assert parse_md5_sidecar("0123456789abcdef0123456789abcdef  pubmed26n0001.xml.gz\n") == "0123456789abcdef0123456789abcdef"
    with pytest.raises(ValueError):
        parse_md5_sidecar("nothing here")
    assert is_input_file("a/pubmed26n0001.xml.gz") and is_input_file("a/x.nxml")
    assert not is_input_file("a/pubmed26n0001.xml.gz.md5") and not is_input_file("a/PMC1.1/PMC1.1.json")


def test_sample_corpus_is_small_and_shipped():
    root = sample_corpus_path()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 100_000
    names = {p.name for p in files}
    assert {"pubmed26n0001.xml.gz", "pubmed26n0001.xml.gz.md5", "pubmed26n0002.xml.gz", "PMC0000001.1.xml", "PMC0000001.1.json"} <= names
