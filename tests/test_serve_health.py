"""``/healthz`` against real databases, and ``/metrics`` read back with prometheus' own parser."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator import metrics
from aggregator.model import PollStatus, SourceHealth, SourceState, UpdateResult
from aggregator.serve import LazyStore, ServerHandle, start_server
from aggregator.store import Store
from tests.test_serve import CATEGORIES, Site, fetch, make_site

DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/x"
NOW = datetime(2022, 5, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def synced(site: Site, store: Store) -> Store:
    """The real store (SQLite and PostgreSQL) knowing the configured sources, one failing."""
    store.sync_config(site.config.sources, CATEGORIES, NOW)
    store.save_state(
        SourceState(
            "zqsb",
            status=PollStatus.FAILED,
            error_kind="timeout",
            error_message="read timed out",
            consecutive_failures=3,
            last_poll_at=NOW,
            last_success_at=NOW - timedelta(hours=2),
            next_due_at=NOW + timedelta(minutes=10),
        )
    )
    store.save_state(
        SourceState(
            "kjrb",
            status=PollStatus.OK,
            last_poll_at=NOW,
            last_success_at=NOW,
            next_due_at=NOW + timedelta(minutes=15),
        )
    )
    return store


def _serve(site: Site, store_provider, healthy: bool = True) -> ServerHandle:  # type: ignore[no-untyped-def]
    return start_server(site.config, store_provider=store_provider, health_provider=lambda: healthy)


@pytest.fixture
def with_store(site: Site, synced: Store) -> Iterator[ServerHandle]:
    handle = _serve(site, lambda: synced)
    try:
        yield handle
    finally:
        handle.stop()


def test_healthz_200_with_each_source(with_store: ServerHandle) -> None:
    answer = fetch(with_store, "/healthz")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    doc = json.loads(answer.body)
    assert doc["database"] == "ok"
    assert doc["status"] == "degraded"  # one source fails; the daemon is fine
    by_id = {s["id"]: s for s in doc["sources"]}
    assert [s["id"] for s in doc["sources"]] == ["kjrb", "zqsb", "off"]
    assert by_id["kjrb"] == {
        "id": "kjrb",
        "health": "ok",
        "last_success": NOW.isoformat(),
        "consecutive_errors": 0,
        "next_poll": (NOW + timedelta(minutes=15)).isoformat(),
    }
    failing = by_id["zqsb"]
    assert failing["health"] == "failing"
    assert failing["consecutive_errors"] == 3
    assert datetime.fromisoformat(failing["last_success"]) == NOW - timedelta(hours=2)
    assert datetime.fromisoformat(failing["next_poll"]) == NOW + timedelta(minutes=10)
    assert failing["error"] == "timeout: read timed out"
    assert by_id["off"]["health"] == "disabled"
    assert by_id["off"]["next_poll"] is None
    head = fetch(with_store, "/healthz", method="HEAD")
    assert head.status == 200 and head.body == b""


def test_healthz_503_without_a_store(site: Site) -> None:
    handle = _serve(site, lambda: None)
    try:
        answer = fetch(handle, "/healthz")
    finally:
        handle.stop()
    assert answer.status == 503
    doc = json.loads(answer.body)
    assert doc["status"] == "unavailable" and doc["database"] == "unavailable"


def test_healthz_503_when_postgresql_does_not_answer(site: Site) -> None:
    store = LazyStore(DEAD_POSTGRES)
    handle = _serve(site, store)
    try:
        first = fetch(handle, "/healthz")
        second = fetch(handle, "/healthz")  # tried again, not remembered as open
        feed = fetch(handle, "/kejiribao.atom")
    finally:
        handle.stop()
        store.close()
    assert first.status == second.status == 503
    assert json.loads(first.body)["database"] == "unavailable"
    assert json.loads(first.body)["error"]
    assert feed.status == 200  # the files are served whatever the database does


def test_healthz_503_when_the_daemon_is_unhealthy(site: Site, synced: Store) -> None:
    handle = _serve(site, lambda: synced, healthy=False)
    try:
        answer = fetch(handle, "/healthz")
    finally:
        handle.stop()
    assert answer.status == 503
    assert json.loads(answer.body)["database"] == "ok"


def test_lazy_store_opens_once_and_is_kept(site: Site, db_url: str) -> None:
    store = LazyStore(db_url)
    handle = _serve(site, store)
    try:
        # no schema yet: serve only reads, so /healthz says so until a poll makes it
        answer = fetch(handle, "/healthz")
        assert answer.status == 503
        assert "aggregator poll or run makes it" in json.loads(answer.body)["error"]
        Store.open(db_url).close()
        assert fetch(handle, "/healthz").status == 200
        opened = store()
        assert fetch(handle, "/healthz").status == 200
        assert store() is opened
    finally:
        handle.stop()
        store.close()


def _families(body: bytes) -> dict[str, list]:  # type: ignore[type-arg]
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def test_metrics_parse_and_count(site: Site) -> None:
    handle = _serve(site, lambda: None)
    try:
        fetch(handle, "/kejiribao.atom")
        fetch(handle, "/nope")
        metrics.record_poll(UpdateResult("kjrb", PollStatus.OK, new=3, updated=1, duration=0.2))
        metrics.record_poll(UpdateResult("zqsb", PollStatus.FAILED, error_kind="timeout"))
        metrics.observe_fetch(0.05)
        metrics.observe_write(0.01)
        metrics.set_failing_sources(1)
        metrics.record_database_error("claim")
        answer = fetch(handle, "/metrics")
    finally:
        handle.stop()
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    families = _families(answer.body)
    for name in (
        "aggregator_polls",
        "aggregator_items",
        "aggregator_poll_duration_seconds",
        "aggregator_fetch_duration_seconds",
        "aggregator_feed_write_duration_seconds",
        "aggregator_sources_failing",
        "aggregator_database_errors",
        "aggregator_http_responses",
    ):
        assert name in families, name

    def value(family: str, sample: str, **labels: str) -> float:
        return next(s.value for s in families[family] if s.name == sample and s.labels == labels)

    assert value("aggregator_polls", "aggregator_polls_total", result="ok") >= 1
    assert value("aggregator_polls", "aggregator_polls_total", result="failed") >= 1
    assert value("aggregator_items", "aggregator_items_total", change="new") >= 3
    assert value("aggregator_items", "aggregator_items_total", change="updated") >= 1
    assert value("aggregator_sources_failing", "aggregator_sources_failing") == 1
    assert (
        value("aggregator_database_errors", "aggregator_database_errors_total", operation="claim")
        >= 1
    )
    assert value("aggregator_http_responses", "aggregator_http_responses_total", status="200") >= 1
    assert value("aggregator_http_responses", "aggregator_http_responses_total", status="404") >= 1
    assert (
        value("aggregator_fetch_duration_seconds", "aggregator_fetch_duration_seconds_count") >= 1
    )


def test_a_hanging_database_neither_blocks_feeds_nor_healthz(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.serve import app

    monkeypatch.setattr(app, "HEALTH_DEADLINE", 0.5)
    release = threading.Event()

    def hanging_store() -> Store:
        release.wait(30)
        raise LookupError("released")

    handle = _serve(site, hanging_store)
    try:
        stuck = [threading.Thread(target=fetch, args=(handle, "/healthz")) for _ in range(4)]
        for t in stuck:
            t.start()
        time.sleep(0.1)
        # a feed replaced now is read by its own threads while /healthz waits on the database
        (site.out / "world.atom").write_bytes(b"<feed>new</feed>\n")
        started = time.monotonic()
        feed = fetch(handle, "/world.atom")
        assert time.monotonic() - started < 0.4
        assert feed.status == 200 and feed.body == b"<feed>new</feed>\n"
        answer = fetch(handle, "/healthz")
        assert answer.status == 503
        assert "did not answer" in json.loads(answer.body)["error"]
    finally:
        release.set()
        handle.stop()
        for t in stuck:
            t.join(10)


# (case, state, enabled) -> (health, problem): one rule for /healthz and `aggregator sources`
HEALTH = [
    ("never polled", SourceState("a"), True, (SourceHealth.OK, None)),
    ("ok", SourceState("a", status=PollStatus.OK), True, (SourceHealth.OK, None)),
    ("unchanged", SourceState("a", status=PollStatus.UNCHANGED), True, (SourceHealth.OK, None)),
    ("failing", SourceState("a", status=PollStatus.FAILED, error_kind="dns",
                            error_message="no such host"), True,
     (SourceHealth.FAILING, "dns: no such host")),
    ("failing, no message", SourceState("a", status=PollStatus.FAILED, error_kind="5xx"), True,
     (SourceHealth.FAILING, "5xx")),
    ("410", SourceState("a", status=PollStatus.DISABLED, error_kind="gone",
                        disabled_reason="410 Gone at x"), True,
     (SourceHealth.DISABLED, "410 Gone at x")),
    ("off in the config", SourceState("a", status=PollStatus.FAILED, error_kind="dns"), False,
     (SourceHealth.DISABLED, "dns")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "enabled", "expect"), [c[1:] for c in HEALTH], ids=[c[0] for c in HEALTH]
)
def test_source_health(
    state: SourceState, enabled: bool, expect: tuple[SourceHealth, str | None]
) -> None:
    assert (state.health(enabled=enabled), state.problem()) == expect
