"""Titles and names as plain text: tags stripped, entities decoded, spaces collapsed.

Feeds put HTML in titles (Atom ``type="html"``, escaped markup in RSS); the
writers and the dedupe key need one line of plain text. Markup is read by
libxml2's HTML parser (linear; ``html.parser`` took 10 s on 24 KB of
unclosed ``<a `` tags, issue 13).
"""

from __future__ import annotations

import html
import re

from lxml import etree

_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_SKIP = frozenset({"script", "style", "template"})
_BREAKS = frozenset({"br", "p", "div", "li"})


def collapse(text: str | None) -> str | None:
    """Whitespace runs (any Unicode space) -> one space; blank -> None."""
    if text is None:
        return None
    return " ".join(text.split()) or None


def plain_text(value: str | None, *, is_html: bool) -> str | None:
    """One line of text from a title that is HTML (``is_html``) or already text."""
    if value is None:
        return None
    return collapse(html_to_text(value) if is_html else value)


def looks_like_html(text: str) -> bool:
    """Tags or ``&…;`` references: what a JSON API's title carries when it is HTML."""
    return bool(_MARKUP.search(text))


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment (script/style dropped), entities decoded."""
    if "<" not in markup:
        return html.unescape(markup)
    root = _parse_html(markup)
    if root is None:
        return ""
    parts: list[str] = []
    skipping = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else None  # comments and PIs: no text
        if event == "start":
            if tag in _SKIP:
                skipping += 1
            elif tag in _BREAKS:
                parts.append(" ")
            if tag is not None and not skipping and el.text:
                parts.append(el.text)
        else:
            if tag in _SKIP:
                skipping -= 1
            if not skipping and el.tail:
                parts.append(el.tail)
    return "".join(parts)


def _parse_html(markup: str) -> etree._Element | None:
    parser = etree.HTMLParser(recover=True, no_network=True, remove_pis=True)
    try:
        return etree.fromstring(markup, parser)
    except (etree.ParserError, ValueError):
        return None


def as_html(value: str | None, *, is_html: bool) -> str | None:
    """A body as HTML: HTML kept exactly as given, plain text escaped; blank -> None."""
    if value is None or not value.strip():
        return None
    return value if is_html else html.escape(value, quote=False)
