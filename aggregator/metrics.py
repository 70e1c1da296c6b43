"""The Prometheus metrics of the process, and the small API the stages record through.

    update/daemon ──record_poll(result)──▶ polls, items, poll duration
    fetch         ──observe_fetch(seconds)──▶ fetch duration histogram
    outputs       ──observe_write(seconds)──▶ feed write duration histogram
    daemon        ──set_failing_sources(n)──▶ failing sources gauge
    store         ──record_database_error(operation)──▶ database errors
    serve         ──count_response(status)──▶ HTTP answers (plain ints, read at scrape)
    serve         ──exposition()──▶ the text /metrics answers

Everything lives in prometheus_client's default registry. The metrics are
made on first use (prometheus_client is imported then, not at start-up), and
one-shot commands call ``disable()``: nothing scrapes an ``aggregator poll``,
and its start-up time is part of every cron'd run (issue 8). Label values are
set up front so every series reads 0 before the first event instead of
being missing.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aggregator.model import PollStatus, UpdateResult

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily

#: seconds: a loopback fetch is milliseconds, a slow source is tens of seconds
_FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Metrics:
    """The metric objects, registered in prometheus_client's default registry once."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
        from prometheus_client.registry import REGISTRY

        # The *_created series double every counter and say nothing a scraper needs.
        disable_created_metrics()
        self.polls = Counter("aggregator_polls", "Source polls, by result.", ["result"])
        self.items = Counter(
            "aggregator_items", "Items a poll stored, by change (new, updated).", ["change"]
        )
        self.poll_duration = Histogram(
            "aggregator_poll_duration_seconds",
            "Wall time of one poll of one source: fetch, parse, store.",
            buckets=_FETCH_BUCKETS,
        )
        self.fetch_duration = Histogram(
            "aggregator_fetch_duration_seconds",
            "Wall time of one HTTP fetch of a source (answered or not).",
            buckets=_FETCH_BUCKETS,
        )
        self.write_duration = Histogram(
            "aggregator_feed_write_duration_seconds",
            "Wall time of one write of the outputs (render and atomic replace).",
            buckets=_WRITE_BUCKETS,
        )
        self.failing_sources = Gauge(
            "aggregator_sources_failing",
            "Sources whose last poll failed (disabled ones not counted).",
        )
        self.database_errors = Counter(
            "aggregator_database_errors",
            "Database operations that failed, by operation.",
            ["operation"],
        )
        for status in (PollStatus.OK, PollStatus.UNCHANGED, PollStatus.FAILED):
            self.polls.labels(status.value)
        for change in ("new", "updated"):
            self.items.labels(change)
        REGISTRY.register(_ResponseCollector())


_lock = threading.Lock()
_made: _Metrics | None = None
_enabled = True


def disable() -> None:
    """For one-shot commands: record nothing (and never import prometheus_client)."""
    global _enabled
    _enabled = False


def _metrics() -> _Metrics | None:
    global _made
    if not _enabled:
        return None
    if _made is None:
        with _lock:
            if _made is None:
                _made = _Metrics()
    return _made


def record_poll(result: UpdateResult) -> None:
    """One finished poll: its result, the items it stored, how long it took."""
    if (m := _metrics()) is None:
        return
    m.polls.labels(result.status.value).inc()
    if result.new:
        m.items.labels("new").inc(result.new)
    if result.updated:
        m.items.labels("updated").inc(result.updated)
    if result.duration > 0:
        m.poll_duration.observe(result.duration)


def observe_fetch(seconds: float) -> None:
    """One HTTP fetch of a source, whatever it answered."""
    if (m := _metrics()) is not None:
        m.fetch_duration.observe(seconds)


def observe_write(seconds: float) -> None:
    """One ``write_outputs`` pass."""
    if (m := _metrics()) is not None:
        m.write_duration.observe(seconds)


def set_failing_sources(count: int) -> None:
    if (m := _metrics()) is not None:
        m.failing_sources.set(count)


def record_database_error(operation: str = "other") -> None:
    """A database call that raised; ``operation`` is a short fixed word (ping, claim, apply...)."""
    if (m := _metrics()) is not None:
        m.database_errors.labels(operation).inc()


def exposition() -> tuple[bytes, str]:
    """What ``/metrics`` answers: the text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import REGISTRY

    _metrics()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# HTTP answers are counted in plain ints by the event loop (no lock, no label lookup on the
# hot path) and turned into a counter only when /metrics is scraped.
_responses: defaultdict[int, int] = defaultdict(int)


def count_response(status: int) -> None:
    _responses[status] += 1


def response_counts() -> dict[int, int]:
    return dict(_responses)


class _ResponseCollector:
    """Registered with the metrics above; a collector is anything with ``collect()``."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "aggregator_http_responses",
            "HTTP answers of the feed server, by status.",
            labels=["status"],
        )
        for status, count in sorted(_responses.items()):
            family.add_metric([str(status)], count)
        yield family

    def describe(self) -> list[Any]:
        return []
