"""A fetched feed document -> ``ParsedFeed``: RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed.

    body ─decode_body─▶ text ─┬─ JSON? ─▶ jsonfeed.parse_json_feed
                              └─ make_safe ─▶ UTF-8 XML ─┬─ fastfeed (lxml) ──┬─▶ entries.to_item …
                                                         └─ feedparser ◀─ None┘

Well-formed RSS/Atom up to ``FAST_MAX_BYTES`` is read by ``fastfeed`` (the
same mappings feedparser would give, issue 8); anything it is not sure about
goes the feedparser way. Bodies over ``INLINE_MAX_BYTES`` are parsed in a warm
child process under the time budget, which also puts parsing on another core.

feedparser gets bytes and our own headers, never a URL (it would fetch it)
and never the raw body (it would open a body that names a file). It gets no
Content-Location either: it would resolve guids against it, so an item's id
would change with the feed's URL; links are resolved here instead.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import feedparser

from aggregator.errors import EmptyFeed, NotAFeed, Unparseable
from aggregator.model import Fetched, ParsedFeed, ParsedItem
from aggregator.parse.budget import INLINE_MAX_BYTES, run_with_budget
from aggregator.parse.dates import parse_date, unknown_zone_names, unknown_zone_warnings
from aggregator.parse.encoding import decode_body
from aggregator.parse.entries import is_html_type, to_item
from aggregator.parse.jsonfeed import looks_like_json, parse_json_feed
from aggregator.parse.links import absolute_http
from aggregator.parse.text import plain_text
from aggregator.parse.xmlsafe import make_safe

log = logging.getLogger("aggregator.parse")

try:  # fastfeed replays feedparser 6.0's private tables (pinned in pyproject.toml)
    from aggregator.parse.fastfeed import read_fast
    from aggregator.parse.fprules import parsed_dates
except (ImportError, AttributeError) as exc:  # another feedparser: its public parse() only
    log.warning("fast feed path off, every feed goes through feedparser.parse: %s", exc)
    read_fast = None  # type: ignore[assignment]

#: bodies up to this size are first tried with lxml in the calling thread (linear time)
FAST_MAX_BYTES = 4 * 1024 * 1024

T = TypeVar("T")

_FEEDPARSER_HEADERS = {"content-type": "application/xml; charset=utf-8"}


def parse_feed(
    fetched: Fetched,
    *,
    tz: ZoneInfo,
    infocode_pattern: str | None = None,
    max_items: int = 1000,
    timeout: float = 20.0,
) -> ParsedFeed:
    """Parse a feed body; raises ``EmptyFeed``, ``NotAFeed`` or ``Unparseable``.

    A well-formed feed without items is a ``ParsedFeed`` with no items; an
    ill-formed one that can be read leniently keeps the items it has, with a
    warning. Only the first ``max_items`` items (document order) are kept.
    """
    return parse_feed_then(
        fetched,
        _itself,
        tz=tz,
        infocode_pattern=infocode_pattern,
        max_items=max_items,
        timeout=timeout,
    )


def parse_feed_then(
    fetched: Fetched,
    then: Callable[[ParsedFeed], T],
    *,
    tz: ZoneInfo,
    infocode_pattern: str | None = None,
    max_items: int = 1000,
    timeout: float = 20.0,
) -> T:
    """``then(parse_feed(fetched, ...))``, with ``then`` run where the parse runs.

    A large body is parsed in a warm child; ``then`` (picklable: a module-level
    function or a ``functools.partial`` of one) runs there too, within the
    same time budget, so the next pure stage (dedupe: sanitizing, hashing)
    also uses the child's core and only its result comes back (issue 8).
    """
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    base = fetched.url
    if location := headers.get("content-location"):
        base = urljoin(fetched.url, location.strip())
    args = (
        fetched.body,
        headers.get("content-type"),
        base,
        headers.get("content-language"),
        tz,
        infocode_pattern,
        max_items,
    )
    if len(fetched.body) <= INLINE_MAX_BYTES:
        return then(parse_document(*args))
    # larger bodies go to a warm child: bounded in time, and parsing runs on the
    # other core while this process fetches and stores (issue 8: one core idle)
    return run_with_budget(_parse_then, then, *args, timeout=timeout)


def _parse_then(then: Callable[[ParsedFeed], T], *args: Any) -> T:
    return then(parse_document(*args))


def _itself(feed: ParsedFeed) -> ParsedFeed:
    return feed


def parse_fast(
    body: bytes,
    content_type: str | None,
    base: str,
    tz: ZoneInfo,
    infocode_pattern: str | None,
    max_items: int,
) -> ParsedFeed | None:
    """The lxml fast path; None when the body needs feedparser (or raises an error)."""
    if read_fast is None:
        return None
    decoded = decode_body(body, content_type)
    text = decoded.text
    if not text.strip(" \t\r\n\x00\ufeff") or looks_like_json(text, content_type):
        return None
    safe = make_safe(text)
    if safe.root is None or (read := read_fast(safe.data)) is None:
        return None
    feed, entries = read
    for entry in entries:
        parsed_dates(entry, lambda raw: parse_date(raw, tz))
    warnings = [*decoded.warnings, *safe.warnings]
    return _records(feed, entries, None, warnings, base, tz, infocode_pattern, max_items)


def parse_document(
    body: bytes,
    content_type: str | None,
    base: str,
    language: str | None,
    tz: ZoneInfo,
    infocode_pattern: str | None,
    max_items: int,
) -> ParsedFeed:
    """The whole parse of one body, in whichever process runs it: lxml first, else feedparser.

    Zone names no date rule knows are warnings (read as no zone).
    """
    with unknown_zone_names() as unknown:
        parsed = None
        if len(body) <= FAST_MAX_BYTES:
            parsed = parse_fast(body, content_type, base, tz, infocode_pattern, max_items)
        if parsed is None:
            parsed = parse_feedparser(
                body, content_type, base, language, tz, infocode_pattern, max_items
            )
    return _with_warnings(parsed, (), unknown_zone_warnings(unknown, tz))


def parse_feedparser(
    body: bytes,
    content_type: str | None,
    base: str,
    language: str | None,
    tz: ZoneInfo,
    infocode_pattern: str | None,
    max_items: int,
) -> ParsedFeed:
    """The feedparser path (and JSON Feed) on its own: what ``parse_fast`` must equal.

    ``parse_document`` takes it where the fast path is unsure; tests force it.
    """
    decoded = decode_body(body, content_type)
    text = decoded.text
    if not text.strip(" \t\r\n\x00\ufeff"):
        raise EmptyFeed("the body is empty")
    if looks_like_json(text, content_type):
        parsed = parse_json_feed(
            text, base=base, tz=tz, infocode_pattern=infocode_pattern, max_items=max_items
        )
        return _with_warnings(parsed, decoded.warnings)

    safe = make_safe(text)
    if safe.root is None:
        raise Unparseable("not XML: no root element")
    root = safe.root.rpartition(":")[2].lower()
    if root == "html":
        raise NotAFeed("an HTML page, not a feed")
    headers = dict(_FEEDPARSER_HEADERS)
    if language:
        headers["content-language"] = language
    try:
        result = feedparser.parse(
            io.BytesIO(safe.data),
            response_headers=headers,
            resolve_relative_uris=False,
            sanitize_html=False,
        )
    except Exception as exc:  # feedparser has crashed on odd input before
        raise Unparseable(f"feedparser failed: {exc!r}") from exc

    feed, entries = result.get("feed", {}), result.get("entries", [])
    problem = _bozo_message(result)
    if not result.get("version") and not entries:
        raise NotAFeed(f"an XML document with root <{safe.root}>, not a feed")
    if problem and not entries and not (feed.get("title") or feed.get("link")):
        raise Unparseable(f"broken feed, nothing recovered: {problem}")

    warnings = [*decoded.warnings, *safe.warnings]
    if problem:
        warnings.append(f"xml: {problem}; read leniently")
    return _records(feed, entries, problem, warnings, base, tz, infocode_pattern, max_items)


def _records(
    feed: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    problem: str | None,
    warnings: list[str],
    base: str,
    tz: ZoneInfo,
    infocode_pattern: str | None,
    max_items: int,
) -> ParsedFeed:
    """feedparser-shaped ``feed``/``entries`` (from either reader) -> ``ParsedFeed``."""
    feed_link = absolute_http(feed.get("link"), base)
    link_base = base or feed_link or ""
    items: list[ParsedItem] = []
    for entry in entries:
        if len(items) == max_items:
            warnings.append(f"items: more than {max_items}, kept the first {max_items}")
            break
        item = to_item(entry, link_base, tz, infocode_pattern)
        if item is None:
            warnings.append("items: an entry with no id, link, title or text dropped")
        else:
            items.append(item)
    title_type = feed.get("title_detail", {}).get("type")
    return ParsedFeed(
        title=plain_text(feed.get("title"), is_html=is_html_type(title_type)),
        link=feed_link,
        items=tuple(items),
        ttl=_ttl(feed.get("ttl")),
        warnings=tuple(warnings),
        lenient=problem is not None,
    )


def _bozo_message(result: feedparser.FeedParserDict) -> str | None:
    """What made the document ill-formed, with its line, or None."""
    if not result.get("bozo"):
        return None
    exc = result.get("bozo_exception")
    message = getattr(exc, "getMessage", lambda: str(exc))()
    line = getattr(exc, "getLineNumber", lambda: None)()
    return f"{message} (line {line})" if line else str(message)


def _ttl(value: object) -> timedelta | None:
    """RSS ``<ttl>``, in minutes; nonsense and zero are ignored."""
    try:
        minutes = int(str(value).strip())
    except ValueError:
        return None
    return timedelta(minutes=minutes) if minutes > 0 else None


def _with_warnings(
    parsed: ParsedFeed, before: tuple[str, ...], after: tuple[str, ...] = ()
) -> ParsedFeed:
    if not before and not after:
        return parsed
    return replace(parsed, warnings=before + parsed.warnings + after)
