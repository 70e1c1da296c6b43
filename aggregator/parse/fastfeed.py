"""Well-formed RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 read with lxml, as feedparser reads them.

feedparser is a third of the poll's CPU (issue 8). For the documents we are
sure about, this module builds the same ``feed``/``entries`` mappings that
feedparser's strict (expat) parser builds for the keys ``entries.to_item``
and ``feed.py`` read, replaying feedparser 6's rules: its namespace table,
``pop()`` text cleanup (strip, URI resolution, the latin-1->UTF-8 repair,
cp1252 mapping), ``xml:base`` tracking, guid-as-link, content vs summary.
Anything else (an element feedparser has a handler for that is not replayed
here, markup inside a text element, base64 or XHTML content, a repeated
element) raises ``_Unsure``: the caller falls back to feedparser.
``tests/test_parse_fastpath.py`` proves both give the same records.
"""

from __future__ import annotations

import re
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

#: feedparser's prefix for each namespace it knows (lower-cased URI -> prefix)
_PREFIXES: dict[str, str] = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_HTML_TYPES = frozenset(_FeedParserMixin.html_types)
_looks_like_html = _FeedParserMixin.looks_like_html
_map_type = _FeedParserMixin.map_content_type
_C1 = re.compile("[\x80-\x9f]")
_QUERY_REF = re.compile("&([A-Za-z0-9_]+);")
#: namespaces whose declaration sets feedparser's version (``track_namespace``)
_VERSION_NS = frozenset(
    {
        "http://my.netscape.com/rdf/simple/0.9/",
        "http://purl.org/rss/1.0/",
        "http://www.w3.org/2005/atom",
    }
)

#: feedparser names handled here, by what they do
_DATES = {
    "pubdate": "published", "published": "published", "issued": "published",
    "dcterms_issued": "published", "updated": "updated", "modified": "updated",
    "lastbuilddate": "updated", "dc_date": "updated", "dcterms_modified": "updated",
    "created": "created", "dcterms_created": "created",
}  # fmt: skip
_AUTHORS = frozenset({"author", "dc_creator", "dc_author"})
_TEXTS = frozenset({"title", "dc_title", "description", "dc_description", "summary"})
_CONTENTS = frozenset({"content", "content_encoded"})
#: handlers that touch none of the keys we read, in any context (leaf elements only)
_HARMLESS = frozenset(
    {
        "category", "dc_subject", "comments", "language", "dc_language",
        "generator", "rights", "copyright", "dc_rights", "docs", "cloud", "subtitle",
        "tagline", "webmaster", "dc_publisher", "source", "width", "height", "info",
        "media_thumbnail",
    }
)  # fmt: skip
#: handlers harmless at feed level only (feed dates, feed author, feed id...)
_FEED_ONLY = frozenset({"managingeditor"})
#: keys ``to_item``/``feed.py`` read: an unknown element by one of these names would set it
_READ_KEYS = frozenset(
    {
        "id", "guidislink", "link", "links", "title", "title_detail", "content", "summary",
        "summary_detail", "author", "author_detail", "authors", "published", "updated",
        "created", "published_parsed", "updated_parsed", "created_parsed", "ttl", "href",
        "name", "email", "enclosures",
    }
)  # fmt: skip


class _Unsure(Exception):
    """The document holds something this module does not replay exactly."""


class _AuthorShim:
    """Just enough of feedparser's parser to run its own author bookkeeping."""

    _save_author = _FeedParserMixin._save_author
    _sync_author_detail = _FeedParserMixin._sync_author_detail

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def _get_context(self) -> dict[str, Any]:
        return self.context


def read_fast(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``(feed, entries)`` as feedparser would give them, or None when unsure."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    try:
        return _Reader(root).read()
    except _Unsure:
        return None


class _Reader:
    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.feed: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.entry: dict[str, Any] | None = None
        self.infeed = False
        self.atom = False
        self.base = ""
        self.bases: list[str] = []
        self.guidislink = False
        self.has_content = False
        self.seen: set[str] = set()  #: handled names in the current item/channel

    def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        root = self.root
        name = _fp_name(root)
        declared = {uri.lower() for uri in (root.nsmap or {}).values()} & _VERSION_NS
        if name == "rss":
            pass  # _start_rss: version rss*, whatever the root declares
        elif name == "feed":
            if declared - {"http://www.w3.org/2005/atom"}:
                raise _Unsure("a feed root declaring an RSS namespace")
            self.atom = self.infeed = True  # _start_feed
        elif name == "rdf_rdf":
            if len(declared) != 1 or "http://www.w3.org/2005/atom" in declared:
                raise _Unsure("RDF without exactly one RSS namespace")
        else:
            raise _Unsure(f"root {name}")
        self.walk(root, 1, top=True)
        return self.feed, self.entries

    # --- the walk: one call per element, in document order ---------------------

    def walk(self, el: etree._Element, depth: int, *, top: bool = False) -> None:
        attrs = _attrs(el) if el.items() else {}
        # with no base yet and no xml:base here, start_base/end_base push and pop "" only
        tracked = bool(attrs or self.base)
        if tracked:
            self.start_base(attrs)
        name = _NAMES.get(el.tag) or _fp_name(el)
        if top or name in ("rdf_rdf",):
            self.children(el, depth)
        elif name == "channel":
            self.channel(el, attrs, depth)
        elif name in ("item", "entry"):
            self.item(el, attrs, depth)
        else:
            self.leaf(el, name, attrs, depth)
        if tracked:
            self.end_base()

    def children(self, el: etree._Element, depth: int) -> None:
        for child in el.iterchildren(etree.Element):  # elements only: no comments, no PIs
            self.walk(child, depth + 1)

    def channel(self, el: etree._Element, attrs: dict[str, str], depth: int) -> None:
        if self.atom or self.entry is not None or "lastmod" in attrs or "href" in attrs:
            raise _Unsure("channel")
        self.infeed = True
        self.seen = set()
        self.children(el, depth)
        self.infeed = False

    def item(self, el: etree._Element, attrs: dict[str, str], depth: int) -> None:
        if self.entry is not None or "lastmod" in attrs or "href" in attrs:
            raise _Unsure("nested item or CDF item")
        parent = el.getparent()
        if parent is not self.root and _fp_name(parent) != "channel":
            raise _Unsure("item outside channel/feed")
        outer_seen = self.seen
        self.entry, self.seen = {}, set()
        self.entries.append(self.entry)
        self.guidislink = False
        if about := attrs.get("rdf:about"):
            self.entry["id"] = about
        self.children(el, depth)
        self.entry, self.seen = None, outer_seen
        self.has_content = False

    @property
    def context(self) -> dict[str, Any]:
        return self.feed if self.entry is None else self.entry

    def stored(self) -> bool:
        """Whether ``pop()`` stores a value here (in an entry, or in the feed)."""
        return self.entry is not None or self.infeed

    def leaf(self, el: etree._Element, name: str, attrs: dict[str, str], depth: int) -> None:
        if name in _DATES:
            self.once(name)
            self.date(_DATES[name], _text(el))
        elif name == "link":
            self.link(el, attrs)
        elif name in ("guid", "id"):
            self.once("id")
            self.guid(el, attrs)
        elif name == "enclosure":
            self.enclosure(attrs)
            self.skip(el, depth)
        elif name in _TEXTS:
            self.once(name)
            self.text_element(el, name, attrs)
        elif name in _CONTENTS:
            self.once(name)
            self.content(el, name, attrs)
        elif name in _AUTHORS:
            self.once("author")
            self.author(el)
        elif name == "ttl" and not attrs:
            self.once(name)
            if self.stored():
                self.context["ttl"] = self.finish(_text(el), "ttl")
        elif name in ("image", "textinput"):
            if self.entry is not None:
                raise _Unsure(name)
            self.image(el, name, depth)
        elif name in _HARMLESS or (name in _FEED_ONLY and self.entry is None):
            self.skip(el, depth)
        elif _has_handler(name) or name in _READ_KEYS:
            raise _Unsure(f"element {name}")
        else:
            self.skip(el, depth)

    def once(self, key: str) -> None:
        if key in self.seen:
            raise _Unsure(f"repeated {key}")
        self.seen.add(key)

    def skip(self, el: etree._Element, depth: int) -> None:
        """An element that sets nothing we read: its descendants must be unknown ones."""
        for child in el.iterdescendants():
            if isinstance(child.tag, str):
                name = _fp_name(child)
                if _has_handler(name) or name in _READ_KEYS:
                    raise _Unsure(f"{name} inside an ignored element")
        self.children(el, depth)

    def image(self, el: etree._Element, name: str, depth: int) -> None:
        allowed = (
            {"title", "link", "url", "width", "height", "description"}
            if name == "image"
            else {"title", "link", "description", "name"}
        )
        for child in el:
            if isinstance(child.tag, str) and (_fp_name(child) not in allowed or _holds(child)):
                raise _Unsure(f"{name} holds {_fp_name(child)}")
        # its children go to the image/textinput context, never to the feed
        self.children_ignored(el, depth)

    def children_ignored(self, el: etree._Element, depth: int) -> None:
        for child in el.iterchildren(etree.Element):
            self.start_base(_attrs(child))
            self.end_base()

    # --- xml:base, as unknown_starttag/unknown_endtag track it -------------------

    def start_base(self, attrs: dict[str, str]) -> None:
        given = attrs.get("xml:base", attrs.get("base")) or self.base
        if not given:  # no base anywhere yet: _urljoin("", "") is ""
            self.bases.append(self.base)
            return
        if self.base:
            self.base = make_safe_absolute_uri(self.base, given) or self.base
        else:
            self.base = _urljoin(self.base, given)
        self.bases.append(self.base)

    def end_base(self) -> None:
        self.bases.pop()
        if self.bases and self.bases[-1]:
            self.base = self.bases[-1]

    # --- pop(): what feedparser does to every text it keeps ----------------------

    def finish(self, text: str, element: str, guid: bool = False) -> str:
        out = text.strip()
        if element in _RELATIVE and out and (element != "id" or guid):
            out = _join(self.base, out)
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

    def store(self, element: str, value: str, detail: dict[str, Any] | None) -> None:
        if self.entry is not None:
            if element == "description":
                element = "summary"
            self.entry[element] = value
            if detail is not None:
                self.entry[element + "_detail"] = {**detail, "value": value}
        elif self.infeed:
            if element == "description":
                element = "subtitle"
            self.feed[element] = value
            if detail is not None:
                self.feed[element + "_detail"] = {**detail, "value": value}

    def params(self, attrs: dict[str, str], default: str) -> dict[str, Any]:
        ctype = _map_type(attrs.get("type", default))
        if attrs.get("mode", "") == "base64" or not (
            ctype.startswith("text/") or ctype.endswith("xml")
        ):
            raise _Unsure("base64 content")
        if ctype == "application/xhtml+xml" or ctype.endswith("+xml") or ctype.endswith("/xml"):
            raise _Unsure(f"{ctype} content")
        return {"type": ctype}

    def typed_text(self, el: etree._Element, element: str, params: dict[str, Any]) -> str:
        value = self.finish(_text(el), element)
        if not self.atom and params["type"] == "text/plain" and _looks_like_html(value):
            params["type"] = "text/html"
        return value

    # --- the elements ------------------------------------------------------------

    def date(self, key: str, raw: str) -> None:
        value = self.finish(raw, key)
        if self.stored():
            self.context[key] = value
        self.context[key + "_raw"] = value  # parsed later, only if ours fails

    def link(self, el: etree._Element, attrs: dict[str, str]) -> None:
        attrs = dict(attrs)
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        if enforced := attrs.get("url", attrs.get("uri", attrs.get("href"))):
            attrs["href"] = enforced
        context = self.context
        if "href" in attrs:
            href = _join(self.base, attrs["href"])
            if attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _HTML_TYPES:
                context["link"] = href
            elif attrs["rel"] == "enclosure":
                self.add_enclosure({**attrs, "href": href})
            return
        self.once("link")
        value = self.finish(_text(el), "link")
        if not self.stored():
            return
        if self.entry is not None:
            value = value.replace("&amp;", "&")
        context["link"] = _QUERY_REF.sub(r"&\g<1>", value) if "&" in value else value

    def enclosure(self, attrs: dict[str, str]) -> None:
        """RSS ``<enclosure url= type= length=>``: a link with rel enclosure, href not resolved."""
        attrs = dict(attrs)
        if enforced := attrs.get("url", attrs.get("uri", attrs.get("href"))):
            attrs["href"] = enforced
        self.add_enclosure(attrs)

    def add_enclosure(self, attrs: dict[str, str]) -> None:
        """As feedparser's ``entry.enclosures`` lists it: the link's attributes but ``rel``."""
        if self.entry is not None:
            kept = {k: v for k, v in attrs.items() if k not in ("rel", "url", "uri")}
            self.entry.setdefault("enclosures", []).append(kept)

    def guid(self, el: etree._Element, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        value = self.finish(_text(el), "id", guid=self.guidislink)
        if self.stored():
            self.context["id"] = value
        context = self.context
        context.setdefault("guidislink", self.guidislink and "link" not in context)
        if self.guidislink:
            context.setdefault("link", value)

    def text_element(self, el: etree._Element, name: str, attrs: dict[str, str]) -> None:
        name = name.removeprefix("dc_")
        if (
            name in ("description", "summary")
            and "summary" in self.context
            and not self.has_content
        ):
            raise _Unsure("a description after a summary (feedparser makes it content)")
        default = "text/html" if name == "description" else "text/plain"
        params = self.params(attrs, default)
        value = self.typed_text(el, name, params)
        self.store(name, value, params)

    def content(self, el: etree._Element, name: str, attrs: dict[str, str]) -> None:
        if self.entry is None:
            raise _Unsure("content outside an item")
        self.has_content = True
        params = self.params(attrs, "text/html" if name == "content_encoded" else "text/plain")
        value = self.typed_text(el, "content", params)
        self.entry.setdefault("content", []).append({**params, "value": value})
        if params["type"] in _HTML_TYPES or params["type"] == "text/plain":
            self.entry.setdefault("summary", value)

    def author(self, el: etree._Element) -> None:
        context = self.context
        context.setdefault("authors", []).append({})
        shim = _AuthorShim(context)
        pieces = [el.text or ""]
        for child in el:
            pieces.append(child.tail or "")
            if not isinstance(child.tag, str):
                continue
            name = _fp_name(child)
            if _holds(child) or name not in ("name", "email", "uri", "url", "homepage"):
                raise _Unsure(f"author holds {name}")
            if name in ("name", "email"):
                shim._save_author(name, _text(child).strip())
            else:  # _start_url: pushed as "href", a URI kept in the context
                href = self.finish(_text(child), "href")
                if self.stored():
                    context["href"] = href
                shim._save_author("href", href)
        value = self.finish("".join(pieces), "author")
        if self.stored():
            context["author"] = value
        shim._sync_author_detail()


def parsed_dates(entry: dict[str, Any], parse_ok: Any) -> None:
    """Give an entry the ``*_parsed`` fallbacks feedparser computes, where ours fail."""
    for key in ("published", "updated", "created"):
        raw = entry.pop(key + "_raw", None)
        if raw is not None and not parse_ok(raw):
            entry[key + "_parsed"] = _parse_date(raw)


def _join(base: str, uri: str) -> str:
    """feedparser's ``_urljoin``; with no base and no ``:///`` to fix, ``uri`` as it is."""
    if not base and ":///" not in uri:  # its regex only drops extra '/' after "scheme://"
        return uri
    return _urljoin(base or "", uri)


def _text(el: etree._Element) -> str:
    """An element's character data (comments and PIs skipped); markup inside: unsure."""
    if not len(el):
        return el.text or ""
    pieces = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str):
            raise _Unsure("markup inside a text element")
        pieces.append(child.tail or "")
    return "".join(pieces)


def _holds(el: etree._Element) -> bool:
    """Whether an element has element children (comments and PIs are not markup)."""
    return any(isinstance(child.tag, str) for child in el)


def _fp_name(el: etree._Element) -> str:
    """The name feedparser dispatches on: known prefix + '_' + lower-case local name."""
    name = _NAMES.get(el.tag)
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
        prefix = _PREFIXES.get(lower)
        if prefix is None:  # an unknown namespace: the name depends on the prefix written
            prefix = el.prefix or ""  # an unknown default namespace: the bare name
            return f"{prefix.lower()}_{local}" if prefix else local
        name = f"{prefix.lower()}_{local}" if prefix else local
    if len(_NAMES) < 4096:
        _NAMES[el.tag] = name
    return name


#: lxml tag ("{uri}local") -> feedparser name, for tags whose name the tag alone decides
_NAMES: dict[str, str] = {}


def _attrs(el: etree._Element) -> dict[str, str]:
    """Attributes keyed as feedparser's strict parser keys them (``xml:base``, ``rel``)."""
    items = el.items()
    if not items:  # most elements: skip the loop and the comprehension below
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        if key.startswith("{"):
            uri, local = key[1:].split("}", 1)
            prefix = _PREFIXES.get(uri.lower(), "")
            full = (prefix + ":" + local if prefix else local).lower()
            out[full] = value
        else:
            local = key
        out[local.lower()] = value
    return {k: (v.lower() if k in ("rel", "type") else v) for k, v in out.items()}


_HANDLERS: dict[str, bool] = {}


def _has_handler(name: str) -> bool:
    known = _HANDLERS.get(name)
    if known is None:
        known = hasattr(_FeedParserMixin, "_start_" + name) or hasattr(
            _FeedParserMixin, "_end_" + name
        )
        _HANDLERS[name] = known
    return known
