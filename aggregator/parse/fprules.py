"""feedparser 6.0's rules, replayed for a tree lxml has read (``fastfeed`` walks it).

What feedparser's strict parser does to every name, attribute and text:
the name it dispatches on (its namespace prefixes), the attribute keys and
lower-cased values, ``pop()``'s text cleanup (strip, URI resolution, the
latin-1->UTF-8 repair, cp1252 mapping), URI joining, and where it has a
handler at all. Its tables are read from feedparser itself (private names,
pinned in pyproject.toml), so they cannot drift from the version installed.
"""

from __future__ import annotations

import re
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree

#: feedparser's prefix for each namespace it knows (lower-cased URI -> prefix)
PREFIXES: dict[str, str] = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
HTML_TYPES = frozenset(_FeedParserMixin.html_types)
looks_like_html = _FeedParserMixin.looks_like_html
map_type = _FeedParserMixin.map_content_type
_C1 = re.compile("[\x80-\x9f]")
QUERY_REF = re.compile("&([A-Za-z0-9_]+);")
#: namespaces whose declaration sets feedparser's version (``track_namespace``)
VERSION_NS = frozenset(
    {
        "http://my.netscape.com/rdf/simple/0.9/",
        "http://purl.org/rss/1.0/",
        "http://www.w3.org/2005/atom",
    }
)


class Unsure(Exception):
    """The document holds something this module does not replay exactly."""


def pop_text(text: str, element: str, base: str, guid: bool = False) -> str:
    """What feedparser's ``pop()`` does to a text it keeps: strip, resolve, repair."""
    out = text.strip()
    if element in RELATIVE and out and (element != "id" or guid):
        out = join_uri(base, out)
    if out.isascii():  # nothing to repair, no C1 control to map
        return out
    try:  # noqa: SIM105 (contextlib.suppress costs three more calls a text)
        out = out.encode("iso-8859-1").decode("utf-8")  # feedparser's mojibake repair
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    # str.translate walks a dict per character: only when a C1 control is there; and a
    # C1 control is U+0080-009F, UTF-8 C2 80-9F: no C2 byte, no search (CJK text has none)
    if b"\xc2" not in out.encode("utf-8", "surrogatepass") or not _C1.search(out):
        return out
    return out.translate(_cp1252)


def parsed_dates(entry: dict[str, Any], parse_ok: Any) -> None:
    """Give an entry the ``*_parsed`` fallbacks feedparser computes, where ours fail."""
    for key in ("published", "updated", "created"):
        raw = entry.pop(key + "_raw", None)
        if raw is not None and not parse_ok(raw):
            entry[key + "_parsed"] = _parse_date(raw)


def join_uri(base: str, uri: str) -> str:
    """feedparser's ``_urljoin``; with no base and no ``:///`` to fix, ``uri`` as it is."""
    if not base and ":///" not in uri:  # its regex only drops extra '/' after "scheme://"
        return uri
    return _urljoin(base or "", uri)


def element_text(el: etree._Element) -> str:
    """An element's character data (comments and PIs skipped); markup inside: unsure."""
    if not len(el):
        return el.text or ""
    pieces = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str):
            raise Unsure("markup inside a text element")
        pieces.append(child.tail or "")
    return "".join(pieces)


def holds(el: etree._Element) -> bool:
    """Whether an element has element children (comments and PIs are not markup)."""
    return any(isinstance(child.tag, str) for child in el)


def fp_name(el: etree._Element) -> str:
    """The name feedparser dispatches on: known prefix + '_' + lower-case local name."""
    name = NAMES.get(el.tag)
    if name is not None:
        return name
    qname = etree.QName(el)
    local = qname.localname.lower()
    uri = qname.namespace
    if uri is None:
        name = local
    else:
        lower = uri.lower()
        if "backend.userland.com/rss" in lower:
            lower = "http://backend.userland.com/rss"
        prefix = PREFIXES.get(lower)
        if prefix is None:  # an unknown namespace: the name depends on the prefix written
            prefix = el.prefix or ""  # an unknown default namespace: the bare name
            return f"{prefix.lower()}_{local}" if prefix else local
        name = f"{prefix.lower()}_{local}" if prefix else local
    if len(NAMES) < 4096:
        NAMES[el.tag] = name
    return name


#: lxml tag ("{uri}local") -> feedparser name, for tags whose name the tag alone decides
NAMES: dict[str, str] = {}


def attrs_of(el: etree._Element) -> dict[str, str]:
    """Attributes keyed as feedparser's strict parser keys them (``xml:base``, ``rel``)."""
    items = el.items()
    if not items:  # most elements: skip the loop and the comprehension below
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        if key.startswith("{"):
            uri, local = key[1:].split("}", 1)
            prefix = PREFIXES.get(uri.lower(), "")
            full = (prefix + ":" + local if prefix else local).lower()
            out[full] = value
        else:
            local = key
        out[local.lower()] = value
    return {k: (v.lower() if k in ("rel", "type") else v) for k, v in out.items()}


_HANDLERS: dict[str, bool] = {}


def has_handler(name: str) -> bool:
    known = _HANDLERS.get(name)
    if known is None:
        known = hasattr(_FeedParserMixin, "_start_" + name) or hasattr(
            _FeedParserMixin, "_end_" + name
        )
        _HANDLERS[name] = known
    return known
