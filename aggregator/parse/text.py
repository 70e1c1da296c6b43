"""Titles and names as plain text: tags stripped, entities decoded, spaces collapsed.

Feeds put HTML in titles (Atom ``type="html"``, escaped markup in RSS); the
writers and the dedupe key need one line of plain text.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_SKIP = frozenset({"script", "style", "template"})


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
    parser = _TextCollector()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def as_html(value: str | None, *, is_html: bool) -> str | None:
    """A body as HTML: HTML kept exactly as given, plain text escaped; blank -> None."""
    if value is None or not value.strip():
        return None
    return value if is_html else html.escape(value, quote=False)
