"""PubTator gold reader.

A document is a ``PMID|t|title`` line, a ``PMID|a|abstract`` line, then tab-separated annotation
lines ``PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>identifier...]`` whose offsets index
``title + " " + abstract``; documents are separated by blank lines. Relation lines
(``PMID<TAB>CID<TAB>id1<TAB>id2``: no integer offsets) are ignored and counted.

With ``unit="passage"`` the title (offset 0) and the abstract (offset ``len(title) + 1``) are two
evaluation documents ``PMID#title`` and ``PMID#abstract``; with ``unit="document"`` the document is
exactly ``title + " " + abstract``.
"""

from __future__ import annotations

import re

from biogliner.eval.gold import GoldCorpus, GoldFormatError, RawAnnotation, RawDoc, RawPassage, Unit, assemble

_TEXT_LINE = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$")
_INT = re.compile(r"-?\d+")


def _flush(block: list[tuple[int, str]], corpus: GoldCorpus, unit: Unit) -> None:
    if not block:
        return
    source = corpus.source
    doc_id: str | None = None
    title: str | None = None
    abstract: str | None = None
    anns: list[RawAnnotation] = []
    try:
        for lineno, line in block:
            m = _TEXT_LINE.match(line)
            if m:
                pid, kind, text = m.groups()
                if doc_id is not None and pid != doc_id:
                    raise GoldFormatError(f"{source}:{lineno}: document {pid!r} starts without a blank line after {doc_id!r}")
                doc_id = pid
                if kind == "t":
                    if title is not None:
                        raise GoldFormatError(f"{source}:{lineno}: document {pid!r}: second title line")
                    title = text
                else:
                    if abstract is not None:
                        raise GoldFormatError(f"{source}:{lineno}: document {pid!r}: second abstract line")
                    abstract = text
                continue
            cols = line.split("\t")
            if doc_id is None:
                doc_id = cols[0]
            where = f"{source}:{lineno}: document {cols[0]!r}"
            if cols[0] != doc_id:
                raise GoldFormatError(f"{where}: annotation of another document (expected {doc_id!r})")
            if len(cols) >= 5 and _INT.fullmatch(cols[1]) and _INT.fullmatch(cols[2]):
                start, end = int(cols[1]), int(cols[2])
                anns.append(RawAnnotation(f"line {lineno}", cols[4], ((start, end - start),), cols[3]))
            elif len(cols) >= 3 and not _INT.fullmatch(cols[1]):
                corpus.dropped["relation_line"] += 1
            else:
                raise GoldFormatError(f"{where}: not a title, abstract, annotation or relation line: {line[:80]!r}")
        if title is None and abstract is None:
            raise GoldFormatError(f"{source}:{block[0][0]}: document {doc_id!r} has no title or abstract line")
        title = title or ""
        passages = [RawPassage(0, title, "title")]
        if abstract is not None:
            passages.append(RawPassage(len(title) + 1, abstract, "abstract"))
        raw = RawDoc(str(doc_id), tuple(passages), tuple(anns))
    except GoldFormatError as exc:
        corpus.skip(doc_id, str(exc))
        return
    assemble(raw, corpus, unit)


def read_pubtator(data: bytes, source: str, unit: Unit = "passage") -> GoldCorpus:
    """Read a PubTator file (``data``: its bytes)."""
    corpus = GoldCorpus(source=source, format="pubtator")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{source}: not UTF-8 text: {exc}") from None
    block: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            _flush(block, corpus, unit)
            block = []
            continue
        m = _TEXT_LINE.match(line)
        if m and m.group(2) == "t" and block and any(_TEXT_LINE.match(b) for _, b in block):
            # a new document without a blank line in between: tolerate it
            _flush(block, corpus, unit)
            block = []
        block.append((lineno, line))
    _flush(block, corpus, unit)
    return corpus
