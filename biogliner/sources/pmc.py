"""PMC: JATS articles from the per-version layout (``PMC{id}.{v}.xml`` + ``.json``) and legacy ``.nxml``.

Roots: ``article``, ``pmc-articleset`` (efetch) and ``OAI-PMH`` (GetRecord); each ``<article>``
is one :class:`Document` with ``doc_id = "pmc:PMC123.1"``. The version comes from the article's
``pmcid-ver`` id, else the metadata JSON, else the file name (``PMC123.2.xml``); a legacy ``.nxml``
with none of these is version 1 (logged). The metadata JSON is looked for next to the XML
(``PMC123.1/PMC123.1.json``), then in the bucket's ``metadata/`` folder; :class:`PmcFilter`
decides from it (a rejected version is one :class:`Skip` with the reason, the XML is not parsed).
When the metadata's ``xml_url`` carries ``?md5=`` the XML bytes are checked against it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

from biogliner import io as bio
from biogliner.schema import Document, Skip
from biogliner.sources.errors import SourceError
from biogliner.sources.jats import (
    XML_LANG,
    article_ids,
    article_journal,
    article_license,
    article_passages,
    article_year,
    strip_namespaces,
)
from biogliner.sources.naming import basename, input_name
from biogliner.sources.pmc_filter import PmcFilter
from biogliner.sources.stream import OpenedSource, Progress, pull_elements

log = logging.getLogger(__name__)

PMC_ROOTS = frozenset({"article", "pmc-articleset", "OAI-PMH"})
_VERSIONED = re.compile(r"^(PMC\d+)\.(\d+)$")
_MD5_PARAM = re.compile(r"[?&]md5=([0-9a-fA-F]{32})")


def metadata_candidates(url: str) -> list[str]:
    """Where the metadata JSON of a per-version ``PMC{id}.{v}.xml`` may be (sibling first)."""
    name = input_name(url)
    if not _VERSIONED.match(name):
        return []
    head = url.split("?", 1)[0]
    folder = head.rsplit("/", 1)[0] if "/" in head else "."
    out = [f"{folder}/{name}.json"]
    if "/" in folder:
        out.append(f"{folder.rsplit('/', 1)[0]}/metadata/{name}.json")
    return out


def load_metadata(url: str, storage_options=None) -> tuple[dict | None, str | None]:
    """``(metadata, where)``; ``(None, None)`` when there is none. Raises ``ValueError`` on bad JSON."""
    for cand in metadata_candidates(url):
        fs, path = bio.filesystem(cand, storage_options)
        if fs.exists(path):
            with fs.open(path, "rb") as f:
                meta = json.loads(f.read().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError(f"{basename(cand)} is not a JSON object")
            return meta, cand
    return None, None


def _pmcid(ids: dict[str, str]) -> str | None:
    for key in ("pmcid", "pmc", "pmcid-ver"):
        val = ids.get(key)
        if val:
            val = val.split(".", 1)[0] if key == "pmcid-ver" else val
            return val if val.upper().startswith("PMC") else f"PMC{val}"
    return None


def parse_article(
    article, source_file: str, position: int, meta: dict | None = None, name_version: tuple[str, int] | None = None
) -> Document | Skip:
    """One JATS ``<article>`` -> :class:`Document` (pure)."""
    if isinstance(article.tag, str) and article.tag.startswith("{"):
        strip_namespaces(article)
    ids = article_ids(article)
    meta = meta or {}
    pmcid = _pmcid(ids) or (str(meta["pmcid"]).split(".", 1)[0] if meta.get("pmcid") else None)
    if pmcid is None and name_version:
        pmcid = name_version[0]
    if pmcid is None:
        return Skip(source_file, position, None, "no_pmcid", "no article-id of type pmcid/pmc and no metadata")
    version = None
    if ids.get("pmcid-ver") and "." in ids["pmcid-ver"]:
        tail = ids["pmcid-ver"].rsplit(".", 1)[1]
        version = int(tail) if tail.isdigit() else None
    if version is None and str(meta.get("version", "")).isdigit():
        version = int(meta["version"])
    if version is None and name_version and name_version[0] == pmcid:
        version = name_version[1]
    if version is None:
        log.info("%s: %s has no version (pmcid-ver, metadata or file name): using version 1", source_file, pmcid)
        version = 1
    pmid_text = ids.get("pmid") or (str(meta["pmid"]) if meta.get("pmid") else "")
    pmid = int(pmid_text) if pmid_text.isdigit() else None
    return Document(
        doc_id=f"pmc:{pmcid}.{version}",
        source="pmc",
        source_file=source_file,
        position=position,
        pmid=pmid,
        version=version,
        pmcid=pmcid,
        doi=ids.get("doi") or meta.get("doi") or None,
        status=article.get("article-type"),
        language=article.get(XML_LANG) or None,
        year=article_year(article),
        journal=article_journal(article),
        license=meta.get("license_code") or article_license(article),
        passages=tuple(article_passages(article)),
    )


def iter_pmc(opened: OpenedSource, *, storage_options=None, pmc_filter: PmcFilter | None = None) -> Iterator[Document | Skip]:
    """Stream the articles of one PMC file (root already sniffed by :func:`open_source`)."""
    pmc_filter = pmc_filter or PmcFilter()
    src = opened.source_file
    name = input_name(opened.url)
    m = _VERSIONED.match(name)
    name_version = (m.group(1), int(m.group(2))) if m else None
    record_id = f"pmc:{name}" if name_version else None
    try:
        meta, where = load_metadata(opened.url, storage_options)
    except (ValueError, UnicodeDecodeError) as exc:
        yield Skip(src, 0, record_id, "bad_metadata", str(exc))
        return
    except OSError as exc:
        raise SourceError(src, f"cannot read PMC metadata: {exc}") from exc
    if meta is not None:
        reject = pmc_filter.reject_reason(meta)
        if reject is not None:
            yield Skip(src, 0, record_id, reject[0], reject[1])
            return
        m5 = _MD5_PARAM.search(str(meta.get("xml_url") or ""))
        if m5 and opened.expected_md5 is None and opened._hashing is not None and opened._hashing.md5 is not None:
            opened.expected_md5, opened.md5_origin = m5.group(1).lower(), f"{basename(where)} xml_url"
    elif name_version is not None:
        if pmc_filter.require_metadata:
            yield Skip(src, 0, record_id, "no_metadata", "no PMC metadata JSON next to the XML")
            return
        log.warning("%s: no metadata JSON found; PMC filters not applied", src)

    progress = Progress()  # the last good record, for error messages
    n = 0
    for el in pull_elements(opened, "{*}article", progress):
        event = parse_article(el, src, n, meta if n == 0 else None, name_version)
        progress.position, n = n, n + 1
        progress.record_id = getattr(event, "doc_id", None) or getattr(event, "record_id", None) or progress.record_id
        yield event
