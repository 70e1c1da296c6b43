"""Pure scheduling decisions, as tables."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import Limits
from aggregator.httpdate import parse_http_date
from aggregator.schedule import backoff, interval_floor, next_poll, parse_retry_after

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
NO_JITTER = Limits(jitter=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", NOW),
        ("120", NOW + 120 * S),
        ("  30 ", NOW + 30 * S),
        ("Wed, 01 May 2024 13:00:00 GMT", NOW + H),  # IMF-fixdate
        ("Wednesday, 01-May-24 13:00:00 GMT", NOW + H),  # obsolete RFC 850
        ("Wed May  1 13:00:00 2024", NOW + H),  # asctime, no zone: UTC
        ("Tue, 30 Apr 2024 12:00:00 GMT", NOW),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("99999999999999999999", NOW + timedelta(days=3660)),  # absurd: clamped, no overflow
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "ttl", "expected"),
    [
        ({}, None, None),
        ({"cache-control": "max-age=600"}, None, 10 * M),
        ({"Cache-Control": "public, max-age=3600"}, None, H),  # names in any case
        ({"cache-control": 'max-age="900"'}, None, 15 * M),
        ({"cache-control": "max-age=0"}, None, None),
        ({"cache-control": "no-cache, max-age=600"}, None, None),
        ({"cache-control": "no-store"}, None, None),
        ({"cache-control": "max-age=abc"}, None, None),
        ({"expires": "Wed, 01 May 2024 12:30:00 GMT"}, None, 30 * M),
        ({"expires": "Wed, 01 May 2024 11:30:00 GMT"}, None, None),  # already stale
        ({"expires": "0"}, None, None),
        # max-age wins over Expires (RFC 9111 §5.3), even when Expires is later
        ({"cache-control": "max-age=60", "expires": "Wed, 01 May 2024 14:00:00 GMT"}, None, M),
        ({}, 30 * M, 30 * M),
        ({}, timedelta(0), None),
        ({"cache-control": "max-age=600"}, H, H),  # the largest wins
        ({"cache-control": "max-age=7200"}, H, 2 * H),
        ({"expires": "Wed, 01 May 2024 14:00:00 GMT"}, 30 * M, 2 * H),
    ],
)
def test_interval_floor(headers, ttl, expected):
    assert interval_floor(headers, ttl, NOW) == expected


LIMITS = Limits(max_backoff=timedelta(hours=6), jitter=0)


@pytest.mark.parametrize(
    ("interval", "failures", "expected"),
    [
        (15 * M, 0, 15 * M),
        (15 * M, 1, 15 * M),  # first failure: the normal schedule
        (15 * M, 2, 30 * M),
        (15 * M, 3, H),
        (15 * M, 5, 4 * H),
        (15 * M, 6, 6 * H),  # 8 h capped at max_backoff
        (15 * M, 1000, 6 * H),  # no overflow
        (12 * H, 3, 12 * H),  # never below the interval
    ],
)
def test_backoff(interval, failures, expected):
    assert backoff(interval, failures, LIMITS) == expected


@pytest.mark.parametrize(
    ("interval", "floor", "retry_after", "failures", "expected"),
    [
        (15 * M, None, None, 0, 15 * M),
        (15 * M, H, None, 0, H),  # Cache-Control/TTL floor
        (15 * M, 5 * M, None, 0, 15 * M),  # a floor never shortens
        (15 * M, 72 * H, None, 0, 24 * H),  # floor capped at max_interval
        (48 * H, None, None, 0, 48 * H),  # the admin's own interval is not capped
        (15 * M, None, None, 3, H),  # backoff
        (15 * M, 2 * H, None, 2, 2 * H),  # floor beats a smaller backoff
        (15 * M, None, NOW + 2 * H, 1, 2 * H),  # Retry-After
        (15 * M, None, NOW + 5 * M, 0, 15 * M),  # an earlier Retry-After changes nothing
        (15 * M, None, NOW + 30 * 24 * H, 1, 24 * H),  # Retry-After capped at max_interval
        (15 * M, None, NOW - H, 1, 15 * M),  # one in the past is ignored
    ],
)
def test_next_poll_without_jitter(interval, floor, retry_after, failures, expected):
    got = next_poll(
        NOW,
        interval,
        floor=floor,
        retry_after=retry_after,
        consecutive_failures=failures,
        limits=NO_JITTER,
        rand=random.Random(1),
    )
    assert got - NOW == expected


def test_jitter_stays_within_the_fraction_and_is_seeded():
    limits = Limits(jitter=0.1)
    delays = []
    for seed in range(200):
        at = next_poll(
            NOW,
            10 * M,
            floor=None,
            retry_after=None,
            consecutive_failures=0,
            limits=limits,
            rand=random.Random(seed),
        )
        delays.append((at - NOW).total_seconds())
    assert min(delays) >= 540 and max(delays) <= 660
    assert len(set(delays)) > 50  # spread, not one value
    again = next_poll(
        NOW,
        10 * M,
        floor=None,
        retry_after=None,
        consecutive_failures=0,
        limits=limits,
        rand=random.Random(0),
    )
    assert (again - NOW).total_seconds() == delays[0]


def test_jitter_never_brings_a_poll_before_retry_after():
    limits = Limits(jitter=0.5)
    for seed in range(50):
        at = next_poll(
            NOW,
            15 * M,
            floor=None,
            retry_after=NOW + H,
            consecutive_failures=1,
            limits=limits,
            rand=random.Random(seed),
        )
        assert at >= NOW + H


def test_next_poll_is_at_least_a_second_away():
    at = next_poll(
        NOW,
        timedelta(0),
        floor=None,
        retry_after=None,
        consecutive_failures=0,
        limits=NO_JITTER,
        rand=random.Random(0),
    )
    assert at == NOW + S


# (case, value) -> the instant, or None
HTTP_DATES = [
    ("IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("obsolete RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT",
     datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("asctime", "Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("zone-less -0000 is UTC", "Sun, 06 Nov 1994 08:49:37 -0000",
     datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("bytes, as a request header comes", b"Sun, 06 Nov 1994 08:49:37 GMT",
     datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("garbage", "yesterday", None),
    ("empty", "", None),
    ("none", None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "when"), [c[1:] for c in HTTP_DATES], ids=[c[0] for c in HTTP_DATES]
)
def test_parse_http_date(value: str | bytes | None, when: datetime | None) -> None:
    got = parse_http_date(value)
    assert got == when
    assert got is None or got.tzinfo is not None
