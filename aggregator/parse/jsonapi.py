"""A JSON list API answer + its ``[sources.json]`` mapping -> ``ParsedFeed``.

Each mapping value is a dotted path into an item (``showtime``,
``data.title``) or, when it has ``{name}`` fields, a template: ``{infocode}``
is the item's normalized infoCode, any other name the item's own field of
that name (dotted allowed). The infoCode comes from the ``infocode`` mapping,
else from the link by the feed rules; an item's guid is its infoCode, else
the ``guid`` mapping. ``parse_detail`` reads the one-article body API.

Both read untrusted bytes as feeds do: a body over ``INLINE_MAX_BYTES`` is
read in a parse child under the time and memory budget (``budget``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aggregator.errors import NotAFeed
from aggregator.model import Fetched, ParsedFeed, ParsedItem
from aggregator.parse.budget import INLINE_MAX_BYTES, run_with_budget
from aggregator.parse.dates import parse_date, unknown_zone_names, unknown_zone_warnings
from aggregator.parse.infocode import find_infocode, normalize_infocode
from aggregator.parse.jsondoc import MISSING, describe, get_path, load_json
from aggregator.parse.links import absolute_http, is_absolute_http
from aggregator.parse.text import looks_like_html, plain_text

if TYPE_CHECKING:  # only its attributes are read; importing config pulls in pydantic
    from aggregator.config import JsonMapping

_FIELD = re.compile(r"\{([^{}]+)\}")

T = TypeVar("T")


class _Unfilled(Exception):
    """A template field has no value in this item."""


def parse_json_api(
    fetched: Fetched,
    mapping: JsonMapping,
    *,
    tz: ZoneInfo,
    max_items: int = 1000,
    timeout: float = 20.0,
) -> ParsedFeed:
    """``parse_json_api_then`` with nothing after it."""
    return parse_json_api_then(
        fetched, mapping, _itself, tz=tz, max_items=max_items, timeout=timeout
    )


def parse_json_api_then(
    fetched: Fetched,
    mapping: JsonMapping,
    then: Callable[[ParsedFeed], T],
    *,
    tz: ZoneInfo,
    max_items: int = 1000,
    timeout: float = 20.0,
) -> T:
    """``then(parse)``, in a parse child under the budget when the body is large.

    As ``feed.parse_feed_then``: ``then`` (picklable) runs where the parse runs.
    """
    if len(fetched.body) <= INLINE_MAX_BYTES:
        return then(_parse_list_dates(fetched, mapping, tz, max_items))
    return run_with_budget(_parse_then, then, fetched, mapping, tz, max_items, timeout=timeout)


def _parse_then(
    then: Callable[[ParsedFeed], T],
    fetched: Fetched,
    mapping: JsonMapping,
    tz: ZoneInfo,
    max_items: int,
) -> T:
    return then(_parse_list_dates(fetched, mapping, tz, max_items))


def _parse_list_dates(
    fetched: Fetched, mapping: JsonMapping, tz: ZoneInfo, max_items: int
) -> ParsedFeed:
    """``_parse_list``, with a warning per zone name no date rule knows."""
    with unknown_zone_names() as unknown:
        parsed = _parse_list(fetched, mapping, tz, max_items)
    if not unknown:
        return parsed
    return replace(parsed, warnings=parsed.warnings + unknown_zone_warnings(unknown, tz))


def _itself(feed: ParsedFeed) -> ParsedFeed:
    return feed


def _parse_list(fetched: Fetched, mapping: JsonMapping, tz: ZoneInfo, max_items: int) -> ParsedFeed:
    """Raises ``Unparseable`` for broken JSON, ``NotAFeed`` when ``items`` finds no list.

    At the ``items`` path: an array is the items; an object whose values are
    all objects (items keyed by id) gives its values; any other object is one item.
    """
    doc = load_json(fetched.body, fetched.headers)
    found = get_path(doc, mapping.items)
    if isinstance(found, dict):
        values = list(found.values())
        found = values if values and all(isinstance(v, dict) for v in values) else [found]
    if not isinstance(found, list):
        what = "nothing" if found is MISSING else describe(found)
        raise NotAFeed(f"no array at items path {mapping.items!r}: found {what} in {describe(doc)}")

    warnings: list[str] = []
    items: list[ParsedItem] = []
    for raw in found:
        if len(items) == max_items:
            warnings.append(f"items: more than {max_items}, kept the first {max_items}")
            break
        if not isinstance(raw, dict):
            warnings.append(f"items: a {type(raw).__name__} where an object was expected, dropped")
            continue
        items.append(_item(raw, mapping, fetched.url, tz))
    return ParsedFeed(title=None, link=None, items=tuple(items), warnings=tuple(warnings))


def parse_detail(
    body: bytes, headers: Mapping[str, str], path: str, *, timeout: float = 20.0
) -> str | None:
    """The article body at ``path`` of a detail answer, exactly as given; None when blank."""
    if len(body) <= INLINE_MAX_BYTES:
        return _detail(body, headers, path)
    return run_with_budget(_detail, body, dict(headers), path, timeout=timeout)


def _detail(body: bytes, headers: Mapping[str, str], path: str) -> str | None:
    value = _scalar(get_path(load_json(body, headers), path))
    return value if value and value.strip() else None


def _item(raw: Mapping[str, Any], mapping: JsonMapping, base: str, tz: ZoneInfo) -> ParsedItem:
    infocode = normalize_infocode(_value(mapping.infocode, raw, None))
    link = absolute_http(_scalar(_value(mapping.link, raw, infocode, url=True)), base)
    own_guid = _scalar(_value(mapping.guid, raw, infocode))
    if infocode is None:
        infocode = find_infocode(link, own_guid, None)
    title = _scalar(_value(mapping.title, raw, infocode))
    detail_url = None
    if mapping.detail is not None:
        detail_url = absolute_http(
            _scalar(_value(mapping.detail.url, raw, infocode, url=True)), base
        )
    return ParsedItem(
        guid=infocode or (own_guid.strip() if own_guid else None) or None,
        link=link,
        title=plain_text(title, is_html=looks_like_html(title) if title else False),
        content=_body(_value(mapping.content, raw, infocode)),
        summary=_body(_value(mapping.summary, raw, infocode)),
        author=plain_text(_scalar(_value(mapping.author, raw, infocode)), is_html=False),
        published=_date(_value(mapping.published, raw, infocode), tz),
        detail_url=detail_url,
        infocode=infocode,
    )


def _value(
    spec: str | None, item: Mapping[str, Any], infocode: str | None, *, url: bool = False
) -> Any:
    """What a mapping value gives for one item: a template filled, or a path followed."""
    if spec is None:
        return None
    if not _FIELD.search(spec):
        found = get_path(item, spec)
        return None if found is MISSING else found

    def fill(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        value = infocode if name == "infocode" else _scalar(get_path(item, name))
        if value is None or value == "":
            raise _Unfilled(name)
        if url and not is_absolute_http(value):
            return quote(value, safe="-._~")
        return value

    try:
        return _FIELD.sub(fill, spec)
    except _Unfilled:
        return None


def _scalar(value: Any) -> str | None:
    """Strings as they are, numbers as their digits; objects, arrays and null -> None."""
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value if isinstance(value, str) else None


def _body(value: Any) -> str | None:
    text = _scalar(value)
    return text if text and text.strip() else None


def _date(value: Any, tz: ZoneInfo) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return parse_date(value, tz)
    return parse_date(value, tz) if isinstance(value, str) else None
