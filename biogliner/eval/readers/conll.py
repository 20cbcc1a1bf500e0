"""CoNLL / BIO gold reader.

One token per line, the token in the first column and its tag in the last (columns separated by
tabs or spaces); a blank line ends a sentence; ``-DOCSTART-`` lines are ignored. Each sentence is
one evaluation document ``<file stem>:<n>`` (n counts sentences from 0) whose text is its tokens
joined by single spaces; entity offsets are computed on that text.

Tags: ``O``; ``B-X`` starts an entity; ``I-X`` continues an open ``X`` entity, and (IOB1
tolerance) starts a new one after ``O`` or after another type; ``S-X``/``U-X`` is a one-token
entity and ``E-X``/``L-X`` ends one (BIOES/BILOU). A tag without a type (``B``, ``I``) gets the
type ``entity``. Any other tag skips its sentence, counted, with the line number.
"""

from __future__ import annotations

import os

from biogliner.eval.gold import GoldCorpus, GoldDoc, GoldFormatError, Span


def _parse_tag(tag: str, where: str) -> tuple[str, str | None]:
    if tag == "O":
        return "O", None
    if len(tag) == 1 and tag in "BIESLU":
        return tag, "entity"
    if len(tag) > 2 and tag[0] in "BIESLU" and tag[1] in "-_":
        return tag[0], tag[2:]
    raise GoldFormatError(f"{where}: unknown tag {tag!r} (expected O, B-X, I-X, E-X, S-X, L-X or U-X)")


def tags_to_spans(tokens: list[str], tags: list[str], where: str = "<tags>") -> tuple[str, list[Span]]:
    """Join ``tokens`` with single spaces and turn their ``tags`` into character spans."""
    starts = []
    pos = 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    text = " ".join(tokens)
    spans: list[Span] = []
    open_start: int | None = None
    open_type: str | None = None
    open_end = 0

    def close() -> None:
        nonlocal open_start, open_type
        if open_start is not None:
            spans.append(Span(starts[open_start], open_end, open_type))
        open_start, open_type = None, None

    for i, (tok, tag) in enumerate(zip(tokens, tags)):
        kind, typ = _parse_tag(tag, f"{where}: token {i} {tok!r}")
        end = starts[i] + len(tok)
        if kind == "O":
            close()
            continue
        if kind in ("B", "S", "U") or open_start is None or typ != open_type:
            close()
            open_start, open_type = i, typ
        open_end = end
        if kind in ("S", "U", "E", "L"):
            close()
    close()
    return text, spans


def read_conll(data: bytes, source: str) -> GoldCorpus:
    """Read a CoNLL/BIO file (``data``: its bytes)."""
    corpus = GoldCorpus(source=source, format="conll")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{source}: not UTF-8 text: {exc}") from None
    stem = os.path.basename(source)
    sentence: list[tuple[int, list[str]]] = []
    n = 0

    def flush() -> None:
        nonlocal n, sentence
        if not sentence:
            return
        doc_id = f"{stem}:{n}"
        n += 1
        where = f"{source}:{sentence[0][0]}: document {doc_id!r}"
        try:
            for lineno, cols in sentence:
                if len(cols) < 2:
                    raise GoldFormatError(f"{source}:{lineno}: document {doc_id!r}: expected a token and a tag, got {cols!r}")
            tokens = [c[0] for _, c in sentence]
            tags = [c[-1] for _, c in sentence]
            doc_text, spans = tags_to_spans(tokens, tags, where)
        except GoldFormatError as exc:
            corpus.skip(doc_id, str(exc))
        else:
            corpus.docs.append(GoldDoc(doc_id, doc_text, tuple(spans)))
        sentence = []

    for lineno, line in enumerate(text.splitlines(), start=1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        sentence.append((lineno, cols))
    flush()
    return corpus
