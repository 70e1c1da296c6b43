"""The parse stage: fetched bytes -> ``ParsedFeed`` (records in ``aggregator.model``).

    Fetched ─▶ encoding.decode_body ─┬─ JSON ─▶ jsonfeed (JSON Feed)
                                     └─ xmlsafe.make_safe ─┬─ fastfeed (lxml) ───┬─▶ entries.to_item
                                                           └─ feedparser ◀─ None ┘
    Fetched + JsonMapping ─▶ jsondoc.load_json ─▶ jsonapi (Eastmoney-style list APIs)
    Fetched + HtmlMapping ─▶ htmlpage (a list page read with CSS selectors)

``feed.parse_document`` tries the lxml fast path first (well-formed RSS/Atom
it is sure about, with feedparser's rules replayed by ``fprules``) and takes
feedparser where it is unsure. Dates (``dates``), infoCodes (``infocode``),
links and enclosures (``links``) and plain-text titles (``text``) follow one
set of rules for every format; ``bounds`` cleans what enters. Bodies over
``budget.INLINE_MAX_BYTES`` (feeds, JSON lists and detail bodies) are parsed
in a child process under a time and memory budget (``budget``);
``parse_feed_then`` and ``parse_json_api_then`` run the next stage there too.
"""

from aggregator.parse.feed import parse_feed, parse_feed_then
from aggregator.parse.jsonapi import parse_detail, parse_json_api, parse_json_api_then

__all__ = [
    "parse_detail",
    "parse_feed",
    "parse_feed_then",
    "parse_json_api",
    "parse_json_api_then",
]
