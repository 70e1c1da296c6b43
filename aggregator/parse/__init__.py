"""The parse stage: fetched bytes -> ``ParsedFeed`` (records in ``aggregator.model``).

    Fetched ─▶ encoding.decode_body ─▶ xmlsafe.make_safe ─▶ feedparser ─▶ entries.to_item
                                   └─▶ jsonfeed (JSON Feed)
    Fetched + JsonMapping ─▶ jsonapi.parse_json_api (Eastmoney-style list APIs)

Dates (``dates``), infoCodes (``infocode``), links (``links``) and plain-text
titles (``text``) follow one set of rules for every format. Large bodies are
parsed in a child process under a time budget (``budget``); ``parse_feed_then``
runs the next stage there too.
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
