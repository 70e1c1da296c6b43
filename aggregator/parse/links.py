"""Item and feed links: made absolute, and only http(s) kept.

A link goes into every written entry's ``<link rel="alternate">``, where a
reader clicks it: relative ones are resolved against the document's URL (or
its xml:base), and ``javascript:``, ``data:`` and the like are dropped.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urljoin, urlsplit

_SCHEMES = ("http", "https")
# an absolute http(s) URL that urljoin and urlsplit give back unchanged: lower-case scheme,
# a host, no ';' (urlparse's params), no empty '?'/'#', no brackets (IPv6 checks), no spaces
_PLAIN_HTTP = re.compile(r"https?://[^/\s;?#\[\]]+(?:/[^\s;?#\[\]]*)?(?:\?[^\s#]+)?(?:#\S+)?")


def absolute_http(url: object, base: str | None = None) -> str | None:
    """``url`` resolved against ``base``; None unless it is an http(s) URL with a host."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url:
        return None
    if url.isascii() and _PLAIN_HTTP.fullmatch(url) and _splits(base):
        return url  # most links: skip urljoin's parse and re-serialization
    if base:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    return url if is_absolute_http(url) else None


def is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal
        return False
    return parts.scheme.lower() in _SCHEMES and bool(parts.netloc)


@functools.lru_cache(maxsize=64)  # one base per document
def _splits(base: str | None) -> bool:
    """Whether urljoin can parse ``base`` (it raises ValueError on a bad IPv6 host)."""
    try:
        urlsplit(base or "")
    except ValueError:
        return False
    return True
