"""Item and feed links: made absolute, and only http(s) kept.

A link goes into every written entry's ``<link rel="alternate">``, where a
reader clicks it: relative ones are resolved against the document's URL (or
its xml:base), and ``javascript:``, ``data:`` and the like are dropped.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

_SCHEMES = ("http", "https")


def absolute_http(url: object, base: str | None = None) -> str | None:
    """``url`` resolved against ``base``; None unless it is an http(s) URL with a host."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url:
        return None
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
