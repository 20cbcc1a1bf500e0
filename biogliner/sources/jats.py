"""JATS (PMC) article -> passages. Pure functions of one ``<article>`` element.

Sections:

- ``title`` (``article-title``), ``subtitle``, ``trans_title:<lang>``;
- ``abstract`` and ``abstract:<sec title>`` for sectioned abstracts (an abstract's own title,
  e.g. ``Author Summary``, or its ``abstract-type`` names it); ``trans_abstract:<lang>``;
- ``body`` / ``body:<Section title>`` for paragraphs; nested sections join their titles with
  `` > `` (``body:Methods > Animals``); ``back:<title>`` for appendices, notes, footnotes and
  acknowledgements (``ref-list`` is never read);
- ``heading:<section>`` for the section titles themselves (they are text too);
- ``caption:fig``, ``caption:table`` (caption title, caption paragraphs, table footnotes),
  ``caption:supplementary``, ``caption:media`` (captions of graphics and media files too) --
  wherever the float sits (body, back or ``floats-group``);
- ``sub_article:...`` the same names for each ``sub-article`` / ``response`` (peer reviews,
  translations, replies), nested ones included.

Each text node is read exactly once: a block inside a paragraph (a figure, list, boxed text...)
becomes its own passage and is left out of the paragraph's text. Table cells (``table``), the
reference list, labels, ``tex-math`` (LaTeX source, not prose), graphics and ids are not NER
input. Elements not named here are walked generically, so unknown markup never loses text.
"""

from __future__ import annotations

import re

from lxml import etree

from biogliner.schema import Passage
from biogliner.sources.xmltext import localname, normalize_ws, text_excluding

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_YEAR = re.compile(r"\d{4}")

# Blocks that may sit inside a paragraph: they are passages of their own.
BLOCKS = frozenset(
    {
        "fig", "fig-group", "table-wrap", "table-wrap-group", "boxed-text", "list", "def-list",
        "disp-quote", "supplementary-material", "statement", "chem-struct-wrap", "verse-group",
        "code", "preformat", "array", "table", "graphic", "media", "ref-list", "sec",
    }
)  # fmt: skip
# Never NER input (cell text, references, LaTeX sources, ids, labels, graphics, permissions).
SKIPPED = frozenset(
    {
        "table", "array", "ref-list", "tex-math", "label", "object-id", "inline-graphic",
        "permissions", "sec-meta", "x",
    }
)  # fmt: skip
EXCLUDED_FROM_TEXT = BLOCKS | SKIPPED
# Read as one passage even without direct text (a formula is not split into its MathML tokens).
LEAVES = frozenset({"disp-formula", "disp-formula-group", "inline-formula", "chem-struct", "term", "verse-line", "speaker"})
CAPTIONED = {"fig": "fig", "fig-group": "fig", "table-wrap": "table", "table-wrap-group": "table",
             "supplementary-material": "supplementary", "chem-struct-wrap": "fig",
             "graphic": "fig", "media": "media"}  # fmt: skip
# Inside a float, a graphic's or media's own caption takes the float's kind.
_INNER_MEDIA = frozenset({"graphic", "media"})


def strip_namespaces(article: etree._Element) -> None:
    """Drop the JATS namespace of an OAI-PMH-style article in place (MathML keeps its own)."""
    for el in article.iter(tag=etree.Element):
        tag = el.tag
        if tag[:1] == "{" and "MathML" not in tag:
            el.tag = localname(tag)


def _direct_text(el) -> bool:
    if el.text and el.text.strip():
        return True
    return any(c.tail and c.tail.strip() for c in el)


def _is_abstract_title(text: str) -> bool:
    return text.strip(" .:").lower() == "abstract"


class PassageCollector:
    """Walks one article (or sub-article) and collects its passages in document order."""

    def __init__(self) -> None:
        self.passages: list[Passage] = []

    def add(self, section: str, text: str) -> None:
        if text:
            self.passages.append(Passage(section, text))

    # --- leaves -------------------------------------------------------------------------
    def paragraph(self, el, section: str) -> None:
        self.add(section, text_excluding(el, EXCLUDED_FROM_TEXT))
        self._inner_blocks(el, section)

    def _inner_blocks(self, el, section: str) -> None:
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = child.tag
            if name in SKIPPED:
                continue
            if name in BLOCKS:
                self.block(child, section, [])
            else:
                self._inner_blocks(child, section)

    # --- containers ---------------------------------------------------------------------
    def block(self, el, prefix: str, path: list[str]) -> None:
        """Dispatch one element in a section-like context."""
        name = el.tag
        if not isinstance(name, str) or name in SKIPPED:
            return
        if name in CAPTIONED:
            self.floating(el, CAPTIONED[name])
        elif name in ("sub-article", "response"):  # nested inside a body: still its own article
            _article_into(self, el, "sub_article:")
        elif name == "p" or name in LEAVES or name.endswith("}math"):
            self.paragraph(el, _section(prefix, path))
        elif _direct_text(el):  # mixed content we do not know (term, disp-formula, verse-line...)
            self.paragraph(el, _section(prefix, path))
        else:
            self.container(el, prefix, path)

    def container(self, el, prefix: str, path: list[str]) -> None:
        title = el.find("title")
        caption = None
        if title is None and el.tag == "boxed-text":  # a box is titled by its caption's title
            caption = el.find("caption")
            title = caption.find("title") if caption is not None else None
        if title is not None:
            text = normalize_ws("".join(title.itertext()))
            if text and not (prefix.endswith("abstract") and not path and _is_abstract_title(text)):
                path = [*path, text]
                self.add(f"heading:{_section(prefix, path)}", text)
        for child in el:
            if child is title or not isinstance(child.tag, str):
                continue
            if child is caption:
                for part in child:
                    if part is not title and isinstance(part.tag, str):
                        self.block(part, prefix, path)
                continue
            self.block(child, prefix, path)

    def floating(self, el, kind: str) -> None:
        """A figure, table or supplementary material: caption title and paragraphs, table
        footnotes, nested floats of a group. Cells, graphics and labels are left out."""
        section = f"caption:{kind}"
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = child.tag
            if name == "caption":
                for part in child:
                    if not isinstance(part.tag, str):
                        continue
                    if part.tag == "title":
                        self.add(section, normalize_ws("".join(part.itertext())))
                    elif part.tag == "p":
                        self.paragraph(part, section)
                    else:
                        self.block(part, section, [])
            elif name in CAPTIONED:
                self.floating(child, kind if name in _INNER_MEDIA else CAPTIONED[name])
            elif name in ("table-wrap-foot", "attrib", "alt-text", "long-desc"):
                self.container(child, section, [])
            elif name in SKIPPED or name in ("alternatives", "title"):
                continue
            elif name == "p":
                self.paragraph(child, section)


def _section(prefix: str, path: list[str]) -> str:
    return f"{prefix}:{' > '.join(path)}" if path else prefix


def article_passages(article, prefix: str = "") -> list[Passage]:
    """Passages of an ``article`` / ``sub-article`` / ``response`` element, in document order."""
    c = PassageCollector()
    _article_into(c, article, prefix)
    return c.passages


def _article_into(c: PassageCollector, article, prefix: str) -> None:
    front = article.find("front")
    meta = front.find("article-meta") if front is not None else article.find("front-stub")
    if meta is None and front is not None:
        meta = front
    if meta is not None:
        tg = meta.find("title-group")
        if tg is not None:
            for child in tg:
                if not isinstance(child.tag, str):
                    continue
                text = normalize_ws("".join(child.itertext()))
                if child.tag == "article-title":
                    c.add(f"{prefix}title", text)
                elif child.tag == "subtitle":
                    c.add(f"{prefix}subtitle", text)
                elif child.tag == "trans-title-group":
                    lang = child.get(XML_LANG) or "und"
                    for t in child:
                        if isinstance(t.tag, str) and t.tag in ("trans-title", "trans-subtitle"):
                            c.add(f"{prefix}trans_title:{lang}", normalize_ws("".join(t.itertext())))
        for ab in meta.iterfind("abstract"):
            kind = ab.get("abstract-type")
            path = [kind] if kind and ab.find("title") is None else []
            c.container(ab, f"{prefix}abstract", path)
        for ab in meta.iterfind("trans-abstract"):
            c.container(ab, f"{prefix}trans_abstract:{ab.get(XML_LANG) or 'und'}", [])
    body = article.find("body")
    if body is not None:
        c.container(body, f"{prefix}body", [])
    back = article.find("back")
    if back is not None:
        for child in back:
            if isinstance(child.tag, str) and child.tag not in SKIPPED:
                c.block(child, f"{prefix}back", [])
    floats = article.find("floats-group")
    if floats is not None:
        for child in floats:
            if isinstance(child.tag, str):
                c.block(child, f"{prefix}body", [])
    for sub in article:
        if isinstance(sub.tag, str) and sub.tag in ("sub-article", "response"):
            _article_into(c, sub, "sub_article:")


# --- metadata ---------------------------------------------------------------------------


def article_ids(article) -> dict[str, str]:
    """``pub-id-type`` -> value for the article's own ``article-id`` elements."""
    out: dict[str, str] = {}
    meta = article.find("front/article-meta")
    if meta is None:
        return out
    for aid in meta.iterfind("article-id"):
        kind = aid.get("pub-id-type")
        val = (aid.text or "").strip()
        if kind and val and kind not in out:
            out[kind] = val
    return out


def article_year(article) -> int | None:
    meta = article.find("front/article-meta")
    if meta is None:
        return None
    dates = list(meta.iterfind("pub-date"))
    preferred = [d for d in dates if (d.get("pub-type") or d.get("date-type")) in ("epub", "ppub", "pub", "collection", "epub-ppub")]
    for d in preferred + dates:
        m = _YEAR.search(d.findtext("year") or d.get("iso-8601-date") or d.findtext("string-date") or "")
        if m:
            return int(m.group())
    return None


def article_journal(article) -> str | None:
    jm = article.find("front/journal-meta")
    if jm is None:
        return None
    for path in ("journal-title-group/journal-title", "journal-title"):
        t = jm.findtext(path)
        if t and t.strip():
            return normalize_ws(t)
    for jid in jm.iterfind("journal-id"):
        if jid.get("journal-id-type") in ("nlm-ta", "iso-abbrev") and jid.text:
            return jid.text.strip()
    return None


def article_license(article) -> str | None:
    lic = article.find("front/article-meta/permissions/license")
    if lic is None:
        return None
    for child in lic:
        if isinstance(child.tag, str) and localname(child.tag) == "license_ref" and child.text and child.text.strip():
            return child.text.strip()
    return lic.get(XLINK_HREF) or lic.get("license-type")
