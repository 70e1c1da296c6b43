"""Item and feed links: made absolute, and only http(s) kept.

A link goes into every written entry's ``<link rel="alternate">``, where a
reader clicks it: relative ones are resolved against the document's URL (or
its xml:base), and ``javascript:``, ``data:`` and the like are dropped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from aggregator.model import Enclosure

_SCHEMES = ("http", "https")
# an absolute http(s) URL that urljoin and urlsplit give back unchanged: lower-case scheme,
# a host, no ';' (urlparse's params), no empty '?'/'#', no brackets (IPv6 checks), no spaces
#: a MIME type as enclosures give it (audio/mpeg, video/mp4; codecs="..." cut at the ';')
_MIME = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}")
#: larger lengths are nonsense (8 EiB)
_MAX_LENGTH = 2**63 - 1
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


def enclosures(
    raw: Iterable[tuple[object, object, object]], base: str | None
) -> tuple[Enclosure, ...]:
    """(url, type, length) as a document gives them -> enclosures, first of each URL kept.

    Only http(s) URLs (made absolute); a type that is no MIME type and a length
    that is no non-negative integer are left out, the enclosure kept.
    """
    found: dict[str, Enclosure] = {}
    for url, mime, length in raw:
        href = absolute_http(url, base)
        if href is None or href in found:
            continue
        found[href] = Enclosure(href, _mime(mime), _length(length))
    return tuple(found.values())


def _mime(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.split(";", 1)[0].strip()
    return value if _MIME.fullmatch(value) else None


def _length(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_LENGTH:
        return value
    return None
