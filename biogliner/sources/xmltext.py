"""Safe lxml parser settings and text extraction shared by the readers.

Text rules (both readers): all nested text is kept (MathML as its text content), word boundaries
are exactly those of the source (text is joined with no separator, so ``the <i>TERT</i> gene``
gives ``the TERT gene`` and ``the<i>TERT</i>gene`` gives ``theTERTgene``), runs of XML whitespace
(space, tab, CR, LF) collapse to one space and ends are stripped. Other Unicode, including
no-break and thin spaces, is kept as is. Comments and processing instructions carry no text.
"""

from __future__ import annotations

import re

from lxml import etree

# No DTD loading, no entity expansion, no network: the only settings the readers ever use.
SAFE_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False)

_WS = re.compile(r"[ \t\n\r]+")


# Characters ``str.split()`` treats as whitespace that XML does not (kept as content).
_NON_XML_WS = re.compile("[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def normalize_ws(text: str) -> str:
    """Collapse runs of XML whitespace to one space and strip the ends."""
    if text.isascii() or _NON_XML_WS.search(text) is None:
        return " ".join(text.split())  # same result, ~3x faster than the regex
    return _WS.sub(" ", text).strip(" ")


def element_text(el: etree._Element) -> str:
    """All text inside ``el`` (not its tail), whitespace-normalised."""
    return normalize_ws("".join(el.itertext()))


def localname(tag) -> str:
    """``'{ns}name'`` -> ``'name'``; comments/PIs (non-string tags) -> ``''``."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1] if tag[:1] == "{" else tag


def text_excluding(el: etree._Element, excluded: frozenset[str]) -> str:
    """Text of ``el`` with the subtrees of ``excluded`` child elements left out (their tails kept).

    Used for JATS paragraphs that contain block elements (a figure or list inside a ``p``): those
    blocks become passages of their own, so their text must not also count in the paragraph.
    """
    parts: list[str] = []
    _collect(el, excluded, parts)
    return normalize_ws("".join(parts))


def _collect(el: etree._Element, excluded: frozenset[str], parts: list[str]) -> None:
    if el.text:
        parts.append(el.text)
    for child in el:
        if isinstance(child.tag, str) and localname(child.tag) not in excluded:
            _collect(child, excluded, parts)
        if child.tail:
            parts.append(child.tail)
