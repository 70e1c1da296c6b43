"""When each source is polled next: pure decisions, no I/O.

    response headers + RSS <ttl> ──interval_floor──▶ floor
    Retry-After                  ──parse_retry_after──▶ retry_after
    interval, floor, retry_after, failures ──next_poll──▶ next_due_at

Politeness is part of scheduling (as in Miniflux's ``ScheduleNextCheck``):
a server's Cache-Control/Expires/TTL and Retry-After push the next poll
later, never earlier, and every such push is capped by ``limits.max_interval``.
Which sources are due is asked of the database (``Store.claim_due``: a
lease each, shared by instances); the timer that asks is APScheduler, in
``daemon/``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from aggregator.config import Limits
from aggregator.httpdate import parse_http_date

#: Longest Retry-After in seconds we bother to represent (ten years); callers cap far lower.
_MAX_SECONDS = 10 * 366 * 86400
#: Backoff exponent cap, so 2**n stays a small number whatever the failure count.
_MAX_DOUBLINGS = 32


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; never before ``now``."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return now + timedelta(seconds=min(int(text), _MAX_SECONDS))
    when = parse_http_date(text)
    return None if when is None else max(when, now)


def interval_floor(
    headers: Mapping[str, str], ttl: timedelta | None, now: datetime
) -> timedelta | None:
    """The shortest interval the server asks for: the largest of freshness and RSS ``<ttl>``.

    Freshness is Cache-Control ``max-age`` when present, else ``Expires`` (max-age
    wins over Expires, RFC 9111 §5.3); ``no-cache``/``no-store`` or a zero age set
    no floor. ``None`` means the server asked for nothing.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    candidates: list[timedelta] = []
    directives = _cache_control(lower.get("cache-control", ""))
    if "no-cache" not in directives and "no-store" not in directives:
        max_age = directives.get("max-age")
        if max_age is not None:
            if max_age.isdigit() and int(max_age) > 0:
                candidates.append(timedelta(seconds=min(int(max_age), _MAX_SECONDS)))
        else:
            expires = parse_http_date(lower.get("expires"))
            if expires is not None and expires > now:
                candidates.append(expires - now)
    if ttl is not None and ttl > timedelta(0):
        candidates.append(ttl)
    return max(candidates, default=None)


def _cache_control(value: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for part in value.split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"') if sep else None
    return out


def backoff(interval: timedelta, consecutive_failures: int, limits: Limits) -> timedelta:
    """Delay after ``n`` failures in a row: ``interval * 2**(n-1)``, capped at max_backoff.

    The first failure retries on the normal schedule (a blip costs nothing), the
    second waits two intervals, the third four, and so on up to
    ``limits.max_backoff``; never less than the interval itself.
    """
    if consecutive_failures <= 0:
        return interval
    doublings = min(consecutive_failures - 1, _MAX_DOUBLINGS)
    return max(interval, min(interval * 2**doublings, limits.max_backoff))


def next_poll(
    now: datetime,
    interval: timedelta,
    *,
    floor: timedelta | None,
    retry_after: datetime | None,
    consecutive_failures: int,
    limits: Limits,
    rand: random.Random,
) -> datetime:
    """When to poll again.

    delay = max(interval, floor capped at max_interval), or the backoff after
    failures; then ± ``limits.jitter`` of it (from ``rand``, so tests seed it);
    then at least Retry-After, itself capped at max_interval. The admin's own
    interval is never shortened by a cap.
    """
    delay = interval
    if floor is not None:
        delay = max(delay, min(floor, limits.max_interval))
    if consecutive_failures > 0:
        delay = max(delay, backoff(interval, consecutive_failures, limits))
    if limits.jitter:
        delay = delay * (1 + rand.uniform(-limits.jitter, limits.jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after - now, limits.max_interval))
    seconds = max(1, round(delay.total_seconds()))
    return now + timedelta(seconds=seconds)
