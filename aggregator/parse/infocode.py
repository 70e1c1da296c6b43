"""infoCode rules: the identity Eastmoney gives an article, found and normalized.

An infoCode is two capital letters and digits; news codes are ``NW`` plus 18
digits whose first 8 are the date. APIs and links also carry the bare 18
digits (``id``, old post file names): those get ``NW`` in front, so every
source of one article yields the same key.

An admin's ``infocode_pattern`` runs on links a source controls, and
Python's ``re`` cannot be stopped: ``(a+)+b`` on 30 ``a``'s takes minutes.
It runs under ``regex`` (the same syntax) with a per-call timeout instead;
a link that times out has no infoCode by the pattern, with a warning.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

import regex

_BARE = re.compile(r"\d{18}")
_CODE = re.compile(r"[A-Za-z]{2}\d+")
_QUERY_NAMES = ("infoCode", "infocode")
#: seconds one pattern search may take (a sane pattern takes microseconds)
PATTERN_TIMEOUT = 0.05

log = logging.getLogger("aggregator.parse")


def normalize_infocode(value: object) -> str | None:
    """``202205252391675717`` -> ``NW202205252391675717``; other ``XX123`` kept; else None.

    A lower-case prefix (``nw2022…``) is upper-cased; numbers (JSON ints) are
    read as their digits.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if _BARE.fullmatch(text):
        return "NW" + text
    if _CODE.fullmatch(text):
        return text[:2].upper() + text[2:]
    return None


def infocode_from_url(url: str | None) -> str | None:
    """The normalized ``infoCode`` (or ``infocode``) query parameter of a URL."""
    if not url or "nfo" not in url:
        return None
    try:
        params = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)
    except ValueError:
        return None
    for name in _QUERY_NAMES:
        for key, value in params:
            if key == name and (code := normalize_infocode(value)):
                return code
    return None


def find_infocode(link: str | None, guid: str | None, pattern: str | None) -> str | None:
    """A feed item's infoCode: ``pattern`` group 1 on link then guid; else their query."""
    if pattern is None:
        return infocode_from_url(link) or infocode_from_url(guid)
    compiled = _compiled(pattern)
    for text in (link, guid):
        if not text:
            continue
        try:
            m = compiled.search(text, timeout=PATTERN_TIMEOUT)
        except TimeoutError:
            log.warning(
                "infocode_pattern %r gave up on %.80r after %gs", pattern, text, PATTERN_TIMEOUT
            )
            continue
        if m and (code := normalize_infocode(m.group(1))):
            return code
    return None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)
