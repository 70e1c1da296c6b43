"""An article page -> the article's HTML, by a source's ``fulltext`` rule.

    fetched page ─▶ encoding.decode_body ─▶ rule "auto": trafilatura (main text, no
                                              navigation, ads or comments)
                                        └─▶ rule "css:<selector>": the matching elements

Links and images come out absolute (a feed reader has no page to resolve them
against); the caller sanitizes the result like any body (``dedupe.with_detail``).
trafilatura was picked over readability-lxml by bench/extract_quality.py: on 47
real pages it found more of each article's key sentences and kept less of the
boilerplate (figures in bench/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import lxml.html
from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector

from aggregator.parse.encoding import decode_body

# lxml refuses a str that still declares its encoding; the bytes were decoded already
_XML_DECL = re.compile(r"^\s*<\?xml[^>]{0,200}\?>")


@dataclass(frozen=True, slots=True)
class FulltextRule:
    """A source's ``fulltext`` value, checked once when the config is read."""

    kind: Literal["auto", "css"]
    selector: str | None = None  #: the CSS selector of a ``css:`` rule

    def __str__(self) -> str:
        return "auto" if self.kind == "auto" else f"css:{self.selector}"


def parse_rule(text: str) -> FulltextRule:
    """``"auto"`` or ``"css:<selector>"``; ValueError saying what is wrong otherwise."""
    if text == "auto":
        return FulltextRule("auto")
    if text.startswith("css:"):
        selector = text[4:].strip()
        compile_selector(selector)
        return FulltextRule("css", selector)
    raise ValueError(f'must be "auto" or "css:<selector>", got {text!r}')


def compile_selector(selector: str) -> CSSSelector:
    """The selector compiled; ValueError (with cssselect's reason) when it is not CSS."""
    if not selector:
        raise ValueError("empty CSS selector")
    try:
        return CSSSelector(selector)
    except (SelectorError, etree.XPathError) as exc:
        raise ValueError(f"bad CSS selector {selector!r}: {exc}") from exc


def parse_page(text: str) -> lxml.html.HtmlElement | None:
    """The page as an lxml tree; None when there is no document to read."""
    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def extract_article(
    body: bytes, headers: Mapping[str, str], url: str, rule: FulltextRule
) -> str | None:
    """The article of a fetched page as HTML with absolute links; None when none was found."""
    text = decode_body(body, headers.get("content-type")).text
    if rule.kind == "css":
        assert rule.selector is not None
        return select_html(text, url, rule.selector)
    return auto_html(text, url)


def select_html(text: str, url: str, selector: str) -> str | None:
    """The outer HTML of every element ``selector`` matches, in document order."""
    doc = parse_page(text)
    if doc is None:
        return None
    found = [el for el in compile_selector(selector)(doc) if isinstance(el, etree.ElementBase)]
    if not found:
        return None
    doc.make_links_absolute(url, resolve_base_href=True, handle_failures="ignore")
    return "\n".join(lxml.html.tostring(el, encoding="unicode", with_tail=False) for el in found)


def auto_html(text: str, url: str) -> str | None:
    """trafilatura's main text as HTML: headings, lists, tables, images and links kept."""
    import trafilatura  # loaded on first use: a daemon without fulltext sources never needs it

    out = trafilatura.extract(
        text,
        url=url,
        output_format="html",
        include_comments=False,
        include_links=True,
        include_images=True,
        include_formatting=True,
        include_tables=True,
    )
    if not out:
        return None
    doc = parse_page(out)
    if doc is None:
        return None
    doc.make_links_absolute(url, handle_failures="ignore")
    body = doc.find("body")
    parts = body if body is not None else [doc]
    html = "".join(lxml.html.tostring(el, encoding="unicode") for el in parts)
    return html.strip() or None
