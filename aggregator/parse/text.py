"""Titles and names as plain text: tags stripped, entities decoded, spaces collapsed.

Feeds put HTML in titles (Atom ``type="html"``, escaped markup in RSS); the
writers and the dedupe key need one line of plain text. A title that is only
an image (``<img alt="Foo" src=…>``) is named by its alt text, else by a
``title`` attribute, instead of being blank (issue 13).
"""

from __future__ import annotations

import html
import re

from lxml import etree

_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


def collapse(text: str | None) -> str | None:
    """Whitespace runs (any Unicode space) -> one space; blank -> None."""
    if text is None:
        return None
    return " ".join(text.split()) or None


def plain_text(value: str | None, *, is_html: bool) -> str | None:
    """One line of text from a title that is HTML (``is_html``) or already text."""
    if value is None:
        return None
    if not is_html:
        return collapse(value)
    from aggregator.sanitize import text_of  # one HTML-to-text for titles and bodies

    return text_of(value) or _named_markup(value)


def _named_markup(markup: str) -> str | None:
    """The alt text of the first image that has one, else the first ``title`` attribute."""
    if "<" not in markup:
        return None
    try:
        root = etree.fromstring(markup, etree.HTMLParser(recover=True, no_network=True))
    except (etree.ParserError, ValueError):
        return None
    if root is None:
        return None
    for attribute in ("alt", "title"):
        for el in root.iter():
            value = el.get(attribute) if isinstance(el.tag, str) else None
            if value and (text := collapse(value)):
                return text
    return None


def looks_like_html(text: str) -> bool:
    """Tags or ``&…;`` references: what a JSON API's title carries when it is HTML."""
    return bool(_MARKUP.search(text))


def as_html(value: str | None, *, is_html: bool) -> str | None:
    """A body as HTML: HTML kept exactly as given, plain text escaped; blank -> None."""
    if value is None or not value.strip():
        return None
    return value if is_html else html.escape(value, quote=False)
