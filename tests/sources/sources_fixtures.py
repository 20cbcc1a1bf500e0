"""Helpers of the readers' tests: small hand-made PubMed inputs written per test."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"

PUBMED_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'


def pubmed_record(pmid: int, title: str = "", abstract: str = "", version: int = 1) -> str:
    title = title or f"Record {pmid} on <i>BRCA1</i> in breast cancer."
    abstract = abstract or f"Abstract of record {pmid}: imatinib inhibits <i>ABL1</i> in K562 cells."
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="{version}">{pmid}</PMID>'
        f"<Article><Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue><Title>J Test</Title></Journal>"
        f"<ArticleTitle>{title}</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText></Abstract>"
        f"<Language>eng</Language></Article></MedlineCitation></PubmedArticle>\n"
    )


def pubmed_xml(n: int, start: int = 1000, deletes: tuple[int, ...] = (), broken_after: int | None = None) -> bytes:
    parts = [PUBMED_HEAD]
    for i in range(n):
        parts.append(pubmed_record(start + i))
        if broken_after is not None and i == broken_after:
            parts.append("<PubmedArticle><MedlineCitation><PMID>1</PMID></Broken></PubmedArticle>\n")
    if deletes:
        parts.append("<DeleteCitation>" + "".join(f'<PMID Version="1">{d}</PMID>' for d in deletes) + "</DeleteCitation>\n")
    parts.append("</PubmedArticleSet>\n")
    return "".join(parts).encode("utf-8")


def write(path: Path, data: bytes, *, gz: bool = False, md5: str | None = None) -> Path:
    """Write ``data`` (gzipped when ``gz``); ``md5="auto"`` writes a correct NCBI sidecar."""
    if gz:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    if md5 is not None:
        digest = hashlib.md5(data).hexdigest() if md5 == "auto" else md5
        path.with_name(path.name + ".md5").write_text(f"MD5({path.name})= {digest}\n")
    return path
