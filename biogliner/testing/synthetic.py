"""Synthetic PubMed shards for tests and benchmarks: the sample corpus's records repeated with
fresh PMIDs (real structure and text, any size)."""

from __future__ import annotations

import gzip
import re

_ARTICLE = re.compile(rb"<PubmedArticle>.*?</PubmedArticle>", re.S)
_PMID = re.compile(rb"(<PMID Version=\"\d+\">|<ArticleId IdType=\"pubmed\">)(\d+)(<)")


def make_pubmed_shard(n_records: int, *, first_pmid: int = 50_000_000, compress: bool = True) -> bytes:
    """A ``PubmedArticleSet`` of ``n_records`` records cycling through the sample shard's records;
    record ``k`` gets PMID ``first_pmid + k`` (in ``<PMID>`` and the pubmed ``ArticleId``)."""
    from biogliner.sources import sample_corpus_path

    raw = gzip.decompress((sample_corpus_path() / "pubmed" / "pubmed26n0001.xml.gz").read_bytes())
    records = _ARTICLE.findall(raw)
    if not records:
        raise RuntimeError("the sample shard holds no <PubmedArticle>")
    head = raw[: raw.index(b"<PubmedArticleSet>") + len(b"<PubmedArticleSet>")]
    parts = [head, b"\n"]
    for k in range(n_records):
        pmid = str(first_pmid + k).encode()
        parts.append(_PMID.sub(lambda m: m.group(1) + pmid + m.group(3), records[k % len(records)]))
        parts.append(b"\n")
    parts.append(b"</PubmedArticleSet>\n")
    data = b"".join(parts)
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data
