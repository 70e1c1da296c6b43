"""A web page of article links + its ``[sources.html]`` selectors -> ``ParsedFeed``.

Each mapping value is a CSS selector, looked up inside one item element
(``items`` inside the page); ``selector@attribute`` takes an attribute instead
of the text, and ``@attribute`` alone reads the item element itself. The first
match counts. Links are resolved against the page's URL (or its ``<base>``),
dates are read like any other date of the source, infoCodes as in JSON sources.

A page where ``items`` or every item's ``title`` matches nothing raises
``EmptyFeed`` naming the selector: the site changed its layout, and the admin
must hear of it before the feed quietly dries up.

A page over ``INLINE_MAX_BYTES`` is read in a parse child under the time and
memory budget, as feeds are: an admin's selector (``a ~ b`` walks every later
sibling) on a hostile page need not be linear (issue 13).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector

from aggregator.errors import EmptyFeed, NotAFeed
from aggregator.extract import compile_selector, parse_page
from aggregator.model import Fetched, ParsedFeed, ParsedItem
from aggregator.parse.budget import INLINE_MAX_BYTES, run_with_budget
from aggregator.parse.dates import parse_date
from aggregator.parse.encoding import decode_body
from aggregator.parse.infocode import find_infocode, normalize_infocode
from aggregator.parse.links import absolute_http
from aggregator.parse.text import collapse

if TYPE_CHECKING:  # only its attributes are read; importing config pulls in pydantic
    from aggregator.config import HtmlMapping

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pick:
    """One ``selector@attribute`` value: where inside an item, and what of it."""

    selector: str  #: CSS; empty = the item element itself
    attribute: str | None  #: None = the element's text


def split_pick(spec: str) -> Pick:
    """``"a@href"`` -> (a, href); ``"span.time"`` -> (span.time, text); ValueError if bad."""
    selector, at, attribute = spec.rpartition("@")
    if not at or "]" in attribute or " " in attribute.strip():
        selector, attribute = spec, ""  # no '@', or one inside [attr@=...]: all selector
    selector, attribute = selector.strip(), attribute.strip()
    if at and attribute == "" and selector != spec.strip():
        raise ValueError(f"{spec!r}: nothing after '@' (write selector@attribute)")
    if selector:
        compile_selector(selector)
    elif not attribute:
        raise ValueError("empty selector")
    return Pick(selector, attribute or None)


def parse_html_page_then(
    fetched: Fetched,
    mapping: HtmlMapping,
    then: Callable[[ParsedFeed], T],
    *,
    tz: tzinfo,
    max_items: int = 1000,
    timeout: float = 20.0,
) -> T:
    """``then(parse_html_page(...))``, in a parse child under the budget for a large page."""
    if len(fetched.body) <= INLINE_MAX_BYTES:
        return then(parse_html_page(fetched, mapping, tz=tz, max_items=max_items))
    return run_with_budget(_parse_then, then, fetched, mapping, tz, max_items, timeout=timeout)


def _parse_then(
    then: Callable[[ParsedFeed], T],
    fetched: Fetched,
    mapping: HtmlMapping,
    tz: tzinfo,
    max_items: int,
) -> T:
    return then(parse_html_page(fetched, mapping, tz=tz, max_items=max_items))


def parse_html_page(
    fetched: Fetched, mapping: HtmlMapping, *, tz: tzinfo, max_items: int = 1000
) -> ParsedFeed:
    """Raises ``NotAFeed`` for a body that is no HTML, ``EmptyFeed`` naming a dead selector."""
    text = decode_body(fetched.body, fetched.headers.get("content-type")).text
    doc = parse_page(text)
    if doc is None:
        raise NotAFeed("empty page: no HTML to read items from")
    base = _base(doc, fetched.url)
    elements = [e for e in _select(mapping.items)(doc) if isinstance(e, etree.ElementBase)]
    if not elements:
        raise EmptyFeed(f"[sources.html] items selector {mapping.items!r} matched nothing")

    warnings: list[str] = []
    items: list[ParsedItem] = []
    titled = 0
    for element in elements:
        if len(items) == max_items:
            warnings.append(f"items: more than {max_items}, kept the first {max_items}")
            break
        item = _item(element, mapping, base, tz)
        titled += item.title is not None
        items.append(item)
    if not titled:
        raise EmptyFeed(
            f"[sources.html] title selector {mapping.title!r} matched nothing "
            f"in any of the {len(elements)} items"
        )
    return ParsedFeed(
        title=_title(doc), link=fetched.url, items=tuple(items), warnings=tuple(warnings)
    )


def _item(element: etree._Element, m: HtmlMapping, base: str, tz: tzinfo) -> ParsedItem:
    link = absolute_http(_value(element, m.link), base)
    infocode = normalize_infocode(_value(element, m.infocode))
    if infocode is None:
        infocode = find_infocode(link, None, None)
    summary = _value(element, m.summary, html=True)
    published = _value(element, m.published)
    return ParsedItem(
        guid=infocode or link,
        link=link,
        title=_value(element, m.title),
        summary=summary,
        published=parse_date(published, tz) if published else None,
        infocode=infocode,
    )


def _value(element: etree._Element, spec: str | None, *, html: bool = False) -> str | None:
    """The text (or attribute, or inner HTML) of the first match of ``spec`` in the item."""
    if spec is None:
        return None
    pick = split_pick(spec)
    if pick.selector:
        found = [e for e in _select(pick.selector)(element) if isinstance(e, etree.ElementBase)]
        if not found:
            return None
        element = found[0]
    if pick.attribute:
        return collapse(element.get(pick.attribute))
    if html:
        inner = (element.text or "") + "".join(
            lxml.html.tostring(child, encoding="unicode") for child in element
        )
        return inner.strip() or None
    return collapse(element.text_content())


@cache
def _select(selector: str) -> CSSSelector:
    return compile_selector(selector)


def _base(doc: etree._Element, url: str) -> str:
    href = doc.xpath("string(//base/@href)")
    return absolute_http(href, url) or url if isinstance(href, str) and href else url


def _title(doc: etree._Element) -> str | None:
    title = doc.xpath("string(//title)")
    return collapse(title) if isinstance(title, str) else None
