"""What of an item may go into a Jekyll post: Jekyll reads it as Liquid, then Markdown, then HTML.

A post keeps the body byte for byte as the source gave it (the original site
did, CRLF and all) only where that body is already safe: every tag and
attribute within the sanitizer's allowlist (and ``class``), every URL of an allowed scheme,
no comment or stray ``<``, and nothing Liquid (``{{``, ``{%``) or kramdown
(``](``, ``]:``, ``{:`` attribute lists) would turn into code, a link or an
attribute. Anything else is written as
the sanitized body with those characters as character references. Names that
go into Markdown link text are escaped; only well-formed http(s) links are
written as ``<LINK>``.
"""

from __future__ import annotations

import html
import re

from aggregator.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES

#: one start or end tag, attributes as one run (read apart by _ATTRIBUTE)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)([^<>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^<>\"']*)*)>")
_ATTRIBUTE = re.compile(
    r"\s*([^\s\"'<>/=]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'=<>`]+)))?|\s*(/)\s*$|(\S)"
)
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
#: kept on any tag in a raw body: no script reads it (Eastmoney marks its source line,
#: ``<p class="em_media">``, in the seed post); the sanitizer drops it from feeds
_ANY_TAG = frozenset({"class"})
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")
_IGNORED_IN_URL = re.compile(r"[\x00-\x20]")  # browsers drop these when reading a scheme
#: what Liquid or Markdown would read as code or a link, anywhere in a body
_NOT_TEXT = ("{{", "{%", "{:", "](", "]:")
#: written as character references in a sanitized body: no Liquid, no Markdown links
_NEUTRAL = str.maketrans({"{": "&#123;", "}": "&#125;", "[": "&#91;", "]": "&#93;"})
#: Markdown (kramdown) punctuation, backslash-escaped in link text
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:<>])")


def is_safe_body(raw: str) -> bool:
    """Whether ``raw`` would pass the sanitizer unchanged in substance, and Jekyll as HTML."""
    # every marker has a brace or a bracket: one scan for those first (a body stored checks)
    if ("{" in raw or "]" in raw) and any(marker in raw for marker in _NOT_TEXT):
        return False
    position = raw.find("<")
    while position != -1:
        tag = _TAG.match(raw, position)
        if tag is None:
            return False
        closing, name, attributes = tag.groups()
        if attributes:
            if not _safe_tag(name.lower(), attributes, bool(closing)):
                return False
        elif name.lower() not in ALLOWED_TAGS:  # a bare tag: only its name to ask about
            return False
        position = raw.find("<", tag.end())
    return True


def post_raw(raw: str | None) -> str | None:
    """``raw`` where a post is written from it, else None (the post uses the sanitized body):
    the raw body the store keeps (``store.bodies.kept``)."""
    return raw if raw is not None and is_safe_body(raw) else None


def _safe_tag(name: str, attributes: str, closing: bool) -> bool:
    if name not in ALLOWED_TAGS:
        return False
    if closing:
        return not attributes.strip()
    allowed = ALLOWED_ATTRIBUTES.get(name, set())
    for m in _ATTRIBUTE.finditer(attributes):
        if m.group(6) is not None:  # a character no attribute reads
            return False
        if m.group(5) is not None:  # <br/>
            continue
        attribute = m.group(1).lower()
        if attribute not in allowed and attribute not in _ANY_TAG:
            return False
        value = next((v for v in m.group(2, 3, 4) if v is not None), "")
        if attribute in _URL_ATTRIBUTES and not _allowed_url(value):
            return False
    return True


def _allowed_url(value: str) -> bool:
    url = _IGNORED_IN_URL.sub("", html.unescape(value)).lower()
    scheme = _SCHEME.match(url)
    if scheme is not None:
        return scheme.group(1) in URL_SCHEMES
    return ":" not in url.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def post_body(raw: str | None, sanitized: str | None) -> str:
    """The raw body where it is safe, else the sanitized one made inert for Liquid and Markdown."""
    if raw is not None and is_safe_body(raw):
        return raw
    return (sanitized or "").translate(_NEUTRAL)


def markdown_text(text: str) -> str:
    """``text`` as Markdown link text that stays text: HTML and Markdown punctuation escaped."""
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))
