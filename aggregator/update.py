"""One source end to end. The pipeline, top to bottom:

    1. job       state -> FetchJob (validators only for the URL they belong to)
    2. fetch     conditional GET; 304 -> save validators, next due, done
    3. parse     bytes -> ParsedFeed (feed, JSON API, or HTML list page)
    4. dedupe    ParsedFeed -> keyed Items; drop what must not be written
                 (3 and 4 run together in a parse child for a large body)
    5. decide    decide.decide: stored versions + Items -> ItemDecisions (pure:
                 new / changed / pending / same, which bodies to ask for)
    6. detail    do what 5 decided: one more request per item marked FETCH (JSON
                 detail APIs; fulltext sources: the item's page, its article extracted)
    7. store     one transaction: versions upserted, merged items re-merged
    8. state     status, error, validators, redirect, next due; lease released

Any failure in 2-3 leaves every stored item as it was: a source serving an
empty or broken document changes nothing but its own state. A document read
only leniently (ill-formed XML, e.g. cut short in transfer) may add items but
never changes a stored one: the item at the cut would lose half its text.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aggregator import canonical, schedule
from aggregator.config import Config, SourceConfig
from aggregator.decide import Decisions, Detail, decide
from aggregator.errors import AggregatorError, FetchError, Gone, ParseError, RateLimited
from aggregator.fetch import Fetcher
from aggregator.model import (
    DetailPage,
    Fetched,
    FetchJob,
    Item,
    NotModified,
    PollStatus,
    SourceRef,
    SourceState,
    UpdateResult,
)
from aggregator.rules import NO_RULES, RuleSet
from aggregator.similar import SimilarRule
from aggregator.store import Store

if TYPE_CHECKING:
    from aggregator.dedupe import Deduped

log = logging.getLogger("aggregator.update")


@dataclass(frozen=True)
class UpdateContext:
    """What one poll needs, passed in (never global)."""

    config: Config
    store: Store
    fetcher: Fetcher
    clock: Callable[[], datetime]
    rand: random.Random
    owner: str | None = None  #: lease owner to release after the poll
    #: takes each poll's new state instead of saving it at once (``poll_sources`` saves
    #: them in batches); called only after the poll's items are committed
    state_sink: Callable[[SourceState], None] | None = None
    rules: RuleSet = NO_RULES  #: run on the merged items as they are stored


def save_state(ctx: UpdateContext, state: SourceState) -> None:
    """The poll's outcome to the sink, else to the store (lease released)."""
    if ctx.state_sink is not None:
        ctx.state_sink(state)
    else:
        ctx.store.save_state(state, release_lease_of=ctx.owner)


def fetch_job(source: SourceConfig, state: SourceState) -> FetchJob:
    url = state.url or source.url
    same = state.validators_url == url
    return FetchJob(
        source_id=source.id,
        url=url,
        configured_url=source.url,
        etag=state.etag if same else None,
        last_modified=state.last_modified if same else None,
    )


def update_source(ctx: UpdateContext, source: SourceConfig, state: SourceState) -> UpdateResult:
    """Poll one source; never raises for the source's own faults."""
    started = time.monotonic()
    now = ctx.clock()
    interval = ctx.config.interval(source)
    try:
        outcome = ctx.fetcher.fetch(fetch_job(source, state))
        if isinstance(outcome, NotModified):
            state = _succeeded(ctx, source, state, now, outcome, ttl=None, interval=interval)
            save_state(ctx, replace(state, status=PollStatus.UNCHANGED))
            return UpdateResult(
                source.id, PollStatus.UNCHANGED, duration=time.monotonic() - started
            )
        deduped = _parse_and_dedupe(ctx, source, outcome, state.key_id)
        decisions = _decide(ctx, source, deduped)
        warnings = [*deduped.warnings, *decisions.warnings]
        items, pages = _fetch_details(ctx, source, decisions, warnings)
        if deduped.categories:
            ctx.store.ensure_categories(deduped.categories)
        applied = ctx.store.apply_items(
            source.id, items, now, ctx.rules, similar=similar_rule(ctx.config, source)
        )
        ctx.store.save_detail_pages(source.id, pages, now)
        # bodies still to ask for: no validators, or a 304 would hide the items next time
        pending = any(item.detail_pending for item in items)
        state = _succeeded(
            ctx,
            source,
            state,
            now,
            outcome,
            ttl=deduped.ttl,
            interval=interval,
            keep_validators=not pending,
        )
        save_state(ctx, replace(state, status=PollStatus.OK))
        if applied.future_dated:
            warnings.append(
                f"{source.id}: {applied.future_dated} items dated more than a day ahead; "
                "dated when first seen instead"
            )
        warnings = _once_per_source(source.id, warnings)
        for warning in warnings:
            log.warning("%s", warning)
        return UpdateResult(
            source.id,
            PollStatus.OK,
            new=applied.new,
            updated=applied.updated,
            unchanged=decisions.unchanged + applied.unchanged,
            skipped=deduped.skipped,
            dropped=applied.dropped,
            warnings=tuple(warnings),
            changed_categories=frozenset(applied.changed_categories),
            duration=time.monotonic() - started,
        )
    except (FetchError, ParseError) as exc:
        state = _failed(ctx, source, state, now, exc, interval)
        save_state(ctx, state)
        return UpdateResult(
            source.id,
            PollStatus.FAILED,
            error_kind=exc.kind,
            error_message=state.error_message,
            duration=time.monotonic() - started,
        )


def source_tz(config: Config, source: SourceConfig) -> ZoneInfo:
    """The zone of the source's zone-less dates: its own ``timezone``, else the site's."""
    return ZoneInfo(source.timezone) if source.timezone else config.aggregator.tz


#: (source id, warning) pairs said once in this process: an unknown zone name recurs each poll
_SAID_ONCE: set[tuple[str, str]] = set()


def _once_per_source(source_id: str, warnings: list[str]) -> list[str]:
    """Warnings as they are, but an unknown zone name only the first time, naming the source."""
    from aggregator.parse.dates import UNKNOWN_ZONE_WARNING  # loaded by the parse already

    kept: list[str] = []
    for warning in warnings:
        if not warning.startswith(UNKNOWN_ZONE_WARNING):
            kept.append(warning)
        elif (source_id, warning) not in _SAID_ONCE:
            _SAID_ONCE.add((source_id, warning))
            kept.append(f"{source_id}: {warning}")
    return kept


def _parse_and_dedupe(
    ctx: UpdateContext, source: SourceConfig, fetched: Fetched, key_id: str | None = None
) -> Deduped:
    """Parse, then dedupe; a large feed does both in a parse child (``parse_feed_then``)."""
    # imported here: a poll where every source answers 304 never loads the parsers,
    # nh3 or pypinyin
    from aggregator.dedupe import dedupe_feed
    from aggregator.parse import parse_feed_then, parse_json_api_then

    cfg = ctx.config
    known = ctx.store.category_names() if source.category_from else None
    tracking = canonical.tracking(cfg.dedupe.tracking_params)
    # runs where the parse runs (a child for large bodies): a plain record, not the config's
    dedupe = partial(
        dedupe_feed,
        SourceRef.of(source),
        known=known,
        key_id=key_id,
        tracking=tracking,
        raw_for_posts=True,
        titles=cfg.similar(source),
    )
    if source.type == "html":
        from aggregator.parse.htmlpage import parse_html_page_then

        assert source.html is not None
        return parse_html_page_then(
            fetched,
            source.html,
            dedupe,
            tz=source_tz(cfg, source),
            max_items=cfg.limits.max_items_per_fetch,
            timeout=cfg.limits.parse_timeout.total_seconds(),
        )
    if source.type == "json":
        assert source.json_ is not None
        return parse_json_api_then(
            fetched,
            source.json_,
            dedupe,
            tz=source_tz(ctx.config, source),
            max_items=cfg.limits.max_items_per_fetch,
            timeout=cfg.limits.parse_timeout.total_seconds(),
        )
    return parse_feed_then(
        fetched,
        dedupe,
        tz=source_tz(ctx.config, source),
        infocode_pattern=source.infocode_pattern,
        max_items=cfg.limits.max_items_per_fetch,
        timeout=cfg.limits.parse_timeout.total_seconds(),
    )


def similar_rule(config: Config, source: SourceConfig) -> SimilarRule | None:
    """The near-duplicate rule for this source's items (None: links only)."""
    if not config.similar(source):
        return None
    return SimilarRule(config.dedupe.window, config.dedupe.threshold)


def _decide(ctx: UpdateContext, source: SourceConfig, deduped: Deduped) -> Decisions:
    """The decider's answer for this document, against the versions the store holds."""
    from aggregator.fulltext import with_pages  # lxml and cssselect: only when polls store

    known = ctx.store.known_versions(source.id, [i.key for i in deduped.items])
    return decide(
        source.id,
        with_pages(source, deduped.items),
        known,
        details=bool(source.json_ and source.json_.detail) or source.fulltext is not None,
        budget=ctx.config.limits.max_details_per_poll,
        lenient=deduped.lenient,
    )


def _fetch_details(
    ctx: UpdateContext, source: SourceConfig, decisions: Decisions, warnings: list[str]
) -> tuple[list[Item], list[DetailPage]]:
    """Each decided item completed with the body its detail request gives (where asked).

    A fulltext source reads each item's page (fulltext.py); the pages read come back too,
    to be saved once the items are.
    """
    if source.fulltext is not None:
        from aggregator.fulltext import complete

        timeout = ctx.config.limits.parse_timeout.total_seconds()
        done = complete(ctx.fetcher, ctx.store, source, decisions.store, warnings, timeout=timeout)
        return done.items, done.pages
    items = [
        decision.resolve(
            _fetch_detail(ctx, source, decision.item, warnings)
            if decision.detail is Detail.FETCH
            else None
        )
        for decision in decisions.store
    ]
    return items, []


def _fetch_detail(
    ctx: UpdateContext, source: SourceConfig, item: Item, warnings: list[str]
) -> str | None:
    from aggregator.parse import parse_detail

    assert source.json_ is not None and source.json_.detail is not None and item.detail_url
    try:
        fetched = ctx.fetcher.fetch(
            FetchJob(source_id=source.id, url=item.detail_url, configured_url=source.url)
        )
        if isinstance(fetched, NotModified):
            return None
        return parse_detail(
            fetched.body,
            fetched.headers,
            source.json_.detail.content,
            timeout=ctx.config.limits.parse_timeout.total_seconds(),
        )
    except AggregatorError as exc:
        warnings.append(
            f"{source.id}: detail request for {item.key} failed ({exc}); "
            "kept the list's text, will ask again next poll"
        )
        return None


def _succeeded(
    ctx: UpdateContext,
    source: SourceConfig,
    state: SourceState,
    now: datetime,
    outcome: Fetched | NotModified,
    *,
    ttl: timedelta | None,
    interval: timedelta,
    keep_validators: bool = True,
) -> SourceState:
    """The state after an answered poll: validators, redirect bookkeeping, next due."""
    permanent_redirect = outcome.permanent_redirect if isinstance(outcome, Fetched) else None
    limits = ctx.config.limits
    current = state.url or source.url
    moved_to, seen = None, 0
    if permanent_redirect and permanent_redirect != current:
        seen = state.redirect_seen + 1 if state.redirect_url == permanent_redirect else 1
        moved_to = permanent_redirect
    new_url = state.url
    if moved_to and seen >= limits.redirect_confirmations:
        log.info("%s: moved permanently to %s (seen %d times)", source.id, moved_to, seen)
        new_url, moved_to, seen = moved_to, None, 0
    floor = schedule.interval_floor(outcome.headers, ttl, now)
    return replace(
        state,
        url=new_url,
        etag=outcome.etag if keep_validators else None,
        last_modified=outcome.last_modified if keep_validators else None,
        validators_url=outcome.url,
        last_poll_at=now,
        last_success_at=now,
        error_kind=None,
        error_message=None,
        consecutive_failures=0,
        disabled_reason=None,  # an explicit poll (--source) that succeeds enables it again
        redirect_url=moved_to,
        redirect_seen=seen,
        next_due_at=schedule.next_poll(
            now,
            interval,
            floor=floor,
            retry_after=None,
            consecutive_failures=0,
            limits=limits,
            rand=ctx.rand,
        ),
    )


def _failed(
    ctx: UpdateContext,
    source: SourceConfig,
    state: SourceState,
    now: datetime,
    exc: FetchError | ParseError,
    interval: timedelta,
) -> SourceState:
    limits = ctx.config.limits
    counted = not isinstance(exc, RateLimited)
    failures = state.consecutive_failures + (1 if counted else 0)
    retry_after = exc.retry_after if isinstance(exc, FetchError) else None
    message = str(exc)
    disabled = None
    if isinstance(exc, Gone):
        disabled = f"410 Gone at {now.isoformat(timespec='seconds')}: source disabled"
        message = (
            f"{message}: source disabled, no more polls "
            f"(`aggregator poll --source {source.id}` tries it again)"
        )
        log.error("%s: %s", source.id, disabled)
    return replace(
        state,
        last_poll_at=now,
        status=PollStatus.DISABLED if disabled else PollStatus.FAILED,
        error_kind=exc.kind,
        error_message=message[:1000],
        consecutive_failures=failures,
        disabled_reason=disabled or state.disabled_reason,
        next_due_at=schedule.next_poll(
            now,
            interval,
            floor=None,
            retry_after=retry_after,
            consecutive_failures=failures,
            limits=limits,
            rand=ctx.rand,
        ),
    )
