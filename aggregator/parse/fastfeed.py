"""Well-formed RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 read with lxml, as feedparser reads them.

feedparser is a third of the poll's CPU (issue 8). For the documents we are
sure about, this module builds the same ``feed``/``entries`` mappings that
feedparser's strict (expat) parser builds for the keys ``entries.to_item``
and ``feed.py`` read: the walk (which element sets what, in which context:
``xml:base`` tracking, guid-as-link, content vs summary, enclosures), with
feedparser 6's rules for names and texts replayed by ``fprules``.
Anything else (an element feedparser has a handler for that is not replayed
here, markup inside a text element, base64 or XHTML content, a repeated
element) raises ``Unsure``: the caller falls back to feedparser.
``tests/test_parse_fastpath.py`` proves both give the same records.
"""

from __future__ import annotations

from typing import Any

from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree

from aggregator.parse.fprules import (
    HTML_TYPES,
    NAMES,
    QUERY_REF,
    VERSION_NS,
    Unsure,
    attrs_of,
    element_text,
    fp_name,
    has_handler,
    holds,
    join_uri,
    looks_like_html,
    map_type,
    pop_text,
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
    except Unsure:
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
        name = fp_name(root)
        declared = {uri.lower() for uri in (root.nsmap or {}).values()} & VERSION_NS
        if name == "rss":
            pass  # _start_rss: version rss*, whatever the root declares
        elif name == "feed":
            if declared - {"http://www.w3.org/2005/atom"}:
                raise Unsure("a feed root declaring an RSS namespace")
            self.atom = self.infeed = True  # _start_feed
        elif name == "rdf_rdf":
            if len(declared) != 1 or "http://www.w3.org/2005/atom" in declared:
                raise Unsure("RDF without exactly one RSS namespace")
        else:
            raise Unsure(f"root {name}")
        self.walk(root, 1, top=True)
        return self.feed, self.entries

    # --- the walk: one call per element, in document order ---------------------

    def walk(self, el: etree._Element, depth: int, *, top: bool = False) -> None:
        attrs = attrs_of(el) if el.items() else {}
        # with no base yet and no xml:base here, start_base/end_base push and pop "" only
        tracked = bool(attrs or self.base)
        if tracked:
            self.start_base(attrs)
        name = NAMES.get(el.tag) or fp_name(el)
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
            raise Unsure("channel")
        self.infeed = True
        self.seen = set()
        self.children(el, depth)
        self.infeed = False

    def item(self, el: etree._Element, attrs: dict[str, str], depth: int) -> None:
        if self.entry is not None or "lastmod" in attrs or "href" in attrs:
            raise Unsure("nested item or CDF item")
        parent = el.getparent()
        if parent is not self.root and fp_name(parent) != "channel":
            raise Unsure("item outside channel/feed")
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
            self.date(_DATES[name], element_text(el))
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
                self.context["ttl"] = self.finish(element_text(el), "ttl")
        elif name in ("image", "textinput"):
            if self.entry is not None:
                raise Unsure(name)
            self.image(el, name, depth)
        elif name in _HARMLESS or (name in _FEED_ONLY and self.entry is None):
            self.skip(el, depth)
        elif has_handler(name) or name in _READ_KEYS:
            raise Unsure(f"element {name}")
        else:
            self.skip(el, depth)

    def once(self, key: str) -> None:
        if key in self.seen:
            raise Unsure(f"repeated {key}")
        self.seen.add(key)

    def skip(self, el: etree._Element, depth: int) -> None:
        """An element that sets nothing we read: its descendants must be unknown ones."""
        for child in el.iterdescendants():
            if isinstance(child.tag, str):
                name = fp_name(child)
                if has_handler(name) or name in _READ_KEYS:
                    raise Unsure(f"{name} inside an ignored element")
        self.children(el, depth)

    def image(self, el: etree._Element, name: str, depth: int) -> None:
        allowed = (
            {"title", "link", "url", "width", "height", "description"}
            if name == "image"
            else {"title", "link", "description", "name"}
        )
        for child in el:
            if isinstance(child.tag, str) and (fp_name(child) not in allowed or holds(child)):
                raise Unsure(f"{name} holds {fp_name(child)}")
        # its children go to the image/textinput context, never to the feed
        self.children_ignored(el, depth)

    def children_ignored(self, el: etree._Element, depth: int) -> None:
        for child in el.iterchildren(etree.Element):
            self.start_base(attrs_of(child))
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
        return pop_text(text, element, self.base, guid)

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
        ctype = map_type(attrs.get("type", default))
        if attrs.get("mode", "") == "base64" or not (
            ctype.startswith("text/") or ctype.endswith("xml")
        ):
            raise Unsure("base64 content")
        if ctype == "application/xhtml+xml" or ctype.endswith("+xml") or ctype.endswith("/xml"):
            raise Unsure(f"{ctype} content")
        return {"type": ctype}

    def typed_text(self, el: etree._Element, element: str, params: dict[str, Any]) -> str:
        value = self.finish(element_text(el), element)
        if not self.atom and params["type"] == "text/plain" and looks_like_html(value):
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
            href = join_uri(self.base, attrs["href"])
            if attrs["rel"] == "alternate" and map_type(attrs["type"]) in HTML_TYPES:
                context["link"] = href
            elif attrs["rel"] == "enclosure":
                self.add_enclosure({**attrs, "href": href})
            return
        self.once("link")
        value = self.finish(element_text(el), "link")
        if not self.stored():
            return
        if self.entry is not None:
            value = value.replace("&amp;", "&")
        context["link"] = QUERY_REF.sub(r"&\g<1>", value) if "&" in value else value

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
        value = self.finish(element_text(el), "id", guid=self.guidislink)
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
            raise Unsure("a description after a summary (feedparser makes it content)")
        default = "text/html" if name == "description" else "text/plain"
        params = self.params(attrs, default)
        value = self.typed_text(el, name, params)
        self.store(name, value, params)

    def content(self, el: etree._Element, name: str, attrs: dict[str, str]) -> None:
        if self.entry is None:
            raise Unsure("content outside an item")
        self.has_content = True
        params = self.params(attrs, "text/html" if name == "content_encoded" else "text/plain")
        value = self.typed_text(el, "content", params)
        self.entry.setdefault("content", []).append({**params, "value": value})
        if params["type"] in HTML_TYPES or params["type"] == "text/plain":
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
            name = fp_name(child)
            if holds(child) or name not in ("name", "email", "uri", "url", "homepage"):
                raise Unsure(f"author holds {name}")
            if name in ("name", "email"):
                shim._save_author(name, element_text(child).strip())
            else:  # _start_url: pushed as "href", a URI kept in the context
                href = self.finish(element_text(child), "href")
                if self.stored():
                    context["href"] = href
                shim._save_author("href", href)
        value = self.finish("".join(pieces), "author")
        if self.stored():
            context["author"] = value
        shim._sync_author_detail()
