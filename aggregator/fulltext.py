"""Full text for ``fulltext`` sources: each decided item's page fetched, its article extracted.

    decide.decide (which items, within [limits] max_details_per_poll)
      ─▶ page request through the source's Fetcher (limits, per-host slots, SSRF guard),
         conditional with the validators kept from the last read of that page
      ─▶ extract.extract_article (rule "auto" or "css:<selector>"), a page over 16 KiB
         in a parse child under [limits] parse_timeout, as a large feed is
      ─▶ ItemDecision.resolve: the article becomes the content (sanitized), the feed's
         summary stays the summary

A page is asked for only when its item is new or changed, or still pending
after a failure (then at the next poll); ``refetch`` reads every stored item's
page once more, unconditionally, for when the rule changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.config import SourceConfig
from aggregator.decide import Change, Detail, ItemDecision
from aggregator.errors import AggregatorError, ParseError
from aggregator.extract import FulltextRule, extract_article, parse_rule
from aggregator.model import DetailPage, Fetched, FetchJob, Item, NotModified
from aggregator.parse.budget import INLINE_MAX_BYTES, run_with_budget
from aggregator.rules import NO_RULES, RuleSet

if TYPE_CHECKING:
    from aggregator.fetch import Fetcher
    from aggregator.store import Store


def with_pages(source: SourceConfig, items: Iterable[Item]) -> tuple[Item, ...]:
    """A fulltext source's items ask for their own link as their detail (None: not fulltext)."""
    if source.fulltext is None:
        return tuple(items)
    return tuple(
        replace(item, detail_url=item.link, detail_pending=True) if item.link else item
        for item in items
    )


@dataclass(frozen=True)
class Completed:
    """The decided items with their bodies, and the pages read for them."""

    items: list[Item]
    pages: list[DetailPage] = field(default_factory=list)
    failed: int = 0  #: pages that failed or gave no article (asked for again next poll)


def complete(
    fetcher: Fetcher,
    store: Store,
    source: SourceConfig,
    decisions: Sequence[ItemDecision],
    warnings: list[str],
    *,
    timeout: float,
    conditional: bool = True,
) -> Completed:
    """Do what the decisions say: fetch and extract each page marked FETCH, in order.

    ``timeout``: the time budget of extracting one large page (``parse_timeout``).
    """
    assert source.fulltext is not None
    rule = parse_rule(source.fulltext)
    fetching = [d.item.key for d in decisions if d.detail is Detail.FETCH]
    known = store.detail_pages(source.id, fetching) if conditional and fetching else {}
    out: list[Item] = []
    seen: list[DetailPage] = []
    failed = 0
    for decision in decisions:
        if decision.detail is not Detail.FETCH:
            out.append(decision.resolve(None))
            continue
        # validators only for a page whose article we hold: a 304 must leave a body in place
        page = known.get(decision.item.key) if decision.holds_body else None
        body, read = _read(fetcher, source, rule, decision.item, page, warnings, timeout)
        if read is not None:
            seen.append(read)
        if body is _SAME:
            out.append(replace(decision.resolve(None), detail_pending=False))
            continue
        failed += body is None
        out.append(decision.resolve(body if isinstance(body, str) else None))
    return Completed(out, seen, failed)


class _Same:
    """The page answered 304: the article already stored stands."""


_SAME = _Same()


def _read(
    fetcher: Fetcher,
    source: SourceConfig,
    rule: FulltextRule,
    item: Item,
    page: DetailPage | None,
    warnings: list[str],
    timeout: float,
) -> tuple[str | _Same | None, DetailPage | None]:
    assert item.detail_url is not None
    job = FetchJob(
        source_id=source.id,
        url=item.detail_url,
        configured_url=source.url,
        etag=page.etag if page and page.url == item.detail_url else None,
        last_modified=page.last_modified if page and page.url == item.detail_url else None,
    )
    try:
        outcome = fetcher.fetch(job)
    except AggregatorError as exc:
        warnings.append(
            f"{source.id}: article page {item.detail_url} for {item.key} failed ({exc}); "
            "kept the feed's text, will ask again next poll"
        )
        return None, None
    if isinstance(outcome, NotModified):
        return _SAME, DetailPage(item.key, item.detail_url, outcome.etag, outcome.last_modified)
    read = DetailPage(item.key, item.detail_url, outcome.etag, outcome.last_modified)
    try:
        body = _extract(outcome, rule, timeout)
    except ParseError as exc:
        warnings.append(
            f"{source.id}: fulltext: reading {outcome.url} ({item.key}) failed ({exc}); "
            "kept the feed's text, will ask again next poll"
        )
        return None, None
    if body is None:
        what = (
            f"selector {rule.selector!r} matched nothing" if rule.selector else "no article found"
        )
        warnings.append(
            f"{source.id}: fulltext: {what} at {outcome.url} ({item.key}); "
            "kept the feed's text, will ask again next poll"
        )
        return None, None
    return body, read


def _extract(fetched: Fetched, rule: FulltextRule, timeout: float) -> str | None:
    """The article; a large page in a parse child, killed when it overruns ``timeout``."""
    if len(fetched.body) <= INLINE_MAX_BYTES:
        return extract_article(fetched.body, fetched.headers, fetched.url, rule)
    headers = dict(fetched.headers)
    return run_with_budget(
        extract_article, fetched.body, headers, fetched.url, rule, timeout=timeout
    )


@dataclass(frozen=True)
class Refetched:
    """What ``aggregator refetch`` did to one source."""

    source_id: str
    items: int  #: stored items with a page
    extracted: int
    failed: int
    updated: int  #: entries whose text changed
    warnings: tuple[str, ...]
    changed_categories: frozenset[str]


def refetch(
    fetcher: Fetcher,
    store: Store,
    source: SourceConfig,
    now: datetime,
    rules: RuleSet = NO_RULES,
    *,
    timeout: float,
) -> Refetched:
    """Every stored item of ``source`` read again from its page, unconditionally, once."""
    stored = [i for i in store.versions_of(source.id) if i.link]
    decisions = [
        ItemDecision(
            replace(item, detail_url=item.link, detail_pending=True),
            Change.CHANGED,
            Detail.FETCH,
            kept_raw=item.content_raw,
            kept_html=item.content_html,
        )
        for item in stored
    ]
    warnings: list[str] = []
    done = complete(fetcher, store, source, decisions, warnings, timeout=timeout, conditional=False)
    extracted = [item for item in done.items if not item.detail_pending]
    applied = store.apply_items(source.id, extracted, now, rules, force=True)
    store.save_detail_pages(source.id, done.pages, now)
    return Refetched(
        source.id,
        len(stored),
        len(extracted),
        done.failed,
        len(applied.changed_keys),
        tuple(warnings),
        frozenset(applied.changed_categories),
    )
