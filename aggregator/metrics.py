"""The Prometheus metrics of the process, and the small API the stages record through.

    update/daemon ──record_poll(result)──▶ polls, items, poll duration
    fetch         ──observe_fetch(seconds)──▶ fetch duration histogram
    outputs       ──observe_write(seconds)──▶ feed write duration histogram
    daemon        ──set_failing_sources(n)──▶ failing sources gauge
    store         ──record_database_error(operation)──▶ database errors
    serve         ──count_response(status)──▶ HTTP answers (plain ints, read at scrape)

Everything lives in prometheus_client's default registry, which ``/metrics``
renders. Label values are set up front so every series reads 0 before the
first event instead of being missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from aggregator.model import PollStatus, UpdateResult

# The *_created series double every counter and say nothing a scraper needs.
disable_created_metrics()

#: seconds: a loopback fetch is milliseconds, a slow source is tens of seconds
_FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

POLLS = Counter("aggregator_polls", "Source polls, by result.", ["result"])
ITEMS = Counter("aggregator_items", "Items a poll stored, by change (new, updated).", ["change"])
POLL_DURATION = Histogram(
    "aggregator_poll_duration_seconds",
    "Wall time of one poll of one source: fetch, parse, store.",
    buckets=_FETCH_BUCKETS,
)
FETCH_DURATION = Histogram(
    "aggregator_fetch_duration_seconds",
    "Wall time of one HTTP fetch of a source (answered or not).",
    buckets=_FETCH_BUCKETS,
)
WRITE_DURATION = Histogram(
    "aggregator_feed_write_duration_seconds",
    "Wall time of one write of the outputs (render and atomic replace).",
    buckets=_WRITE_BUCKETS,
)
FAILING_SOURCES = Gauge(
    "aggregator_sources_failing", "Sources whose last poll failed (disabled ones not counted)."
)
DATABASE_ERRORS = Counter(
    "aggregator_database_errors", "Database operations that failed, by operation.", ["operation"]
)

for _status in (PollStatus.OK, PollStatus.UNCHANGED, PollStatus.FAILED):
    POLLS.labels(_status.value)
for _change in ("new", "updated"):
    ITEMS.labels(_change)


def record_poll(result: UpdateResult) -> None:
    """One finished poll: its result, the items it stored, how long it took."""
    POLLS.labels(result.status.value).inc()
    if result.new:
        ITEMS.labels("new").inc(result.new)
    if result.updated:
        ITEMS.labels("updated").inc(result.updated)
    if result.duration > 0:
        POLL_DURATION.observe(result.duration)


def observe_fetch(seconds: float) -> None:
    """One HTTP fetch of a source, whatever it answered."""
    FETCH_DURATION.observe(seconds)


def observe_write(seconds: float) -> None:
    """One ``write_outputs`` pass."""
    WRITE_DURATION.observe(seconds)


def set_failing_sources(count: int) -> None:
    FAILING_SOURCES.set(count)


def record_database_error(operation: str = "other") -> None:
    """A database call that raised; ``operation`` is a short fixed word (ping, claim, apply...)."""
    DATABASE_ERRORS.labels(operation).inc()


# HTTP answers are counted in plain ints by the event loop (no lock, no label lookup on the
# hot path) and turned into a counter only when /metrics is scraped.
_responses: defaultdict[int, int] = defaultdict(int)


def count_response(status: int) -> None:
    _responses[status] += 1


def response_counts() -> dict[int, int]:
    return dict(_responses)


class _ResponseCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "aggregator_http_responses",
            "HTTP answers of the feed server, by status.",
            labels=["status"],
        )
        for status, count in sorted(_responses.items()):
            family.add_metric([str(status)], count)
        yield family


REGISTRY.register(_ResponseCollector())
