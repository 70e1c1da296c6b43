"""Make untrusted text safe to publish: an HTML allowlist, XML-legal characters, plain text.

Every body a source gives is hostile until it went through :func:`clean_html`;
every string written into XML goes through :func:`strip_illegal_xml` (lxml
refuses the rest, and a feed reader would refuse the whole feed).
"""

from __future__ import annotations

import html
import re
from typing import Literal, overload

import nh3

#: Tags kept (their text is kept either way); anything else is unwrapped.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        # text
        "p", "br", "hr", "span", "div", "b", "strong", "i", "em", "u", "s", "del", "ins",
        "mark", "small", "sub", "sup", "abbr", "cite", "q", "dfn", "kbd", "samp", "var", "time",
        # links and images
        "a", "img",
        # headings, quotes, code
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code",
        # lists
        "ul", "ol", "li", "dl", "dt", "dd",
        # tables
        "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "colgroup", "col",
        # figures
        "figure", "figcaption",
    }
)  # fmt: skip

#: Removed together with everything inside them.
DROPPED_WITH_CONTENT: frozenset[str] = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "noscript", "template", "svg", "math", "form", "textarea", "select", "button",
        "title", "head",
    }
)  # fmt: skip

#: Attributes kept per tag; no ``style``, no ``class``, no ``on*`` handlers anywhere.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "ol": {"start", "reversed", "type"},
    "li": {"value"},
    "th": {"colspan", "rowspan", "scope", "headers", "align"},
    "td": {"colspan", "rowspan", "headers", "align"},
    "col": {"span"},
    "colgroup": {"span"},
}

#: Schemes allowed in ``href``/``src``/``cite``; relative URLs pass as they are.
URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})

# XML 1.0 Char production (https://www.w3.org/TR/xml/#charsets), negated.
_ILLEGAL_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# A space before block-level tags, so "<p>a</p><p>b</p>" reads "a b", not "ab".
_BLOCK_TAG = re.compile(
    r"<(?=/?(?:p|div|br|hr|li|dt|dd|tr|td|th|h[1-6]|blockquote|pre|figure|figcaption|table"
    r"|ul|ol|dl|caption|section|article|header|footer)\b)",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
# nh3 writes every attribute as ` name="value"` with '"' escaped, so this finds every
# href/src without a scheme: the ones rewrite_with_base resolves (it leaves `cite` alone).
_RELATIVE_ATTR = re.compile(r' (?:href|src)="(?![A-Za-z][A-Za-z0-9+.\-]*:)')


def strip_illegal_xml(text: str) -> str:
    """Drop characters XML 1.0 forbids: C0 controls but tab/LF/CR, lone surrogates, U+FFFE/FFFF."""
    return _ILLEGAL_XML.sub("", text)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # nh3 has one scheme list for every URL attribute; an image has no use for mailto:.
    if tag == "img" and attribute == "src" and value.strip().lower().startswith("mailto:"):
        return None
    return value


def _cleaner(relative: tuple[Literal["rewrite_with_base"], str] | None = None) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative=relative,
    )


_CLEANER = _cleaner()
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT), strip_comments=True
)


@overload
def clean_html(html: str, *, base_url: str | None = None) -> str: ...
@overload
def clean_html(html: None, *, base_url: str | None = None) -> None: ...
def clean_html(html: str | None, *, base_url: str | None = None) -> str | None:
    """Sanitize HTML against the allowlist above; links get ``rel="noopener noreferrer"``.

    With ``base_url`` (the item's own link), relative ``href``/``src`` are made
    absolute against it: a feed reader has no page to resolve them against.
    The shared cleaner runs first; only a body whose output still has a relative
    link is cleaned again by a cleaner built for its base (most have none).
    """
    if html is None:
        return None
    if _ILLEGAL_XML.search(html):
        html = _ILLEGAL_XML.sub("", html)
    out = _CLEANER.clean(html)
    if (
        base_url
        and base_url.lower().startswith(("http://", "https://"))
        and _RELATIVE_ATTR.search(out)
    ):
        out = _clean_with_base(html, base_url)
    if "&#" in html:  # only a character reference can bring an illegal character back
        out = strip_illegal_xml(out)
    return out


def _clean_with_base(html: str, base_url: str) -> str:
    """The clean by nh3's own ``rewrite_with_base`` (a new cleaner: ~60 us to build)."""
    try:
        cleaner = _cleaner(("rewrite_with_base", base_url))
    except ValueError:  # a base nh3 cannot parse: leave relative URLs as they are
        cleaner = _CLEANER
    return cleaner.clean(html)


_ANY_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG_WHOLE = re.compile(
    r"</?(?:p|div|br|hr|li|dt|dd|tr|td|th|h[1-6]|blockquote|pre|figure|figcaption|table"
    r"|ul|ol|dl|caption|section|article|header|footer)\b[^>]*>",
    re.IGNORECASE,
)


def text_of_clean(cleaned: str | None) -> str:
    """``text_of`` for HTML ``clean_html`` already made (a stored body): the same text,
    four times faster, because nh3 wrote every tag whole and nothing needs cleaning again.
    Rules read it for every stored item when they are re-applied (issue 16)."""
    return " ".join(spaced_text_of_clean(cleaned).split())


def spaced_text_of_clean(cleaned: str | None) -> str:
    """``text_of_clean`` before its whitespace is collapsed (over half of its cost): what a
    rule's pattern that cannot tell the difference reads (rules/patterns.py ``space_blind``)."""
    if not cleaned:
        return ""
    text = _ANY_TAG.sub("", _BLOCK_TAG_WHOLE.sub(" ", cleaned))
    if "&" in text:
        text = html.unescape(text)
    return text


def text_of(html_text: str | None) -> str:
    """Plain text of an HTML fragment: tags gone, entities decoded, whitespace collapsed."""
    if not html_text:
        return ""
    spaced = _BLOCK_TAG.sub(" <", strip_illegal_xml(html_text))
    bare = _TEXT_CLEANER.clean(spaced)
    text = html.unescape(bare)
    return _SPACES.sub(" ", strip_illegal_xml(text)).strip()
