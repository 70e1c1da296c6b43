"""Each part of the daemon driven alone, against a real SQLite store and loopback feeds.

The whole daemon, as systemd runs it, is tested in test_daemon.py; here each
part (dispatcher, writer, reloader, health) runs without the others.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from aggregator.config import Config, load_config
from aggregator.daemon.dispatch import Dispatcher
from aggregator.daemon.health import DISPATCH_STALL_SECONDS, Health
from aggregator.daemon.reload import Reloader, due_after_reload
from aggregator.daemon.writer import OutputWriter
from aggregator.fetch import Fetcher
from aggregator.model import PollStatus, SourceState, UpdateResult
from aggregator.notify import Notifier
from aggregator.poll import open_store, poll_sources, utcnow
from aggregator.store import Store
from aggregator.update import UpdateContext
from tests.loopback import LoopbackServer, Request, Response
from tests.test_daemon import NotifyListener, rss, source, wait_until, write_main

#: a PostgreSQL address nothing listens on: a database that does not answer
DEAD_DB = "postgresql://postgres@127.0.0.1:1/nothing"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


def setup(tmp_path: Path, sources: str) -> tuple[Config, Store]:
    config = load_config(write_main(tmp_path, sources))
    return config, open_store(config)


def due_now(store: Store, source_id: str) -> None:
    state = store.state(source_id)
    store.save_state(replace(state, next_due_at=utcnow() - timedelta(seconds=1)))


# ------------------------------------------------------------------ dispatcher


def test_dispatcher_polls_what_is_due_once(tmp_path: Path, loopback: LoopbackServer) -> None:
    url = loopback.add("/a.xml", rss("a"))
    config, store = setup(tmp_path, source("a", url, "1h"))
    results: list[UpdateResult] = []
    stopping = threading.Event()
    dispatcher = Dispatcher(
        store, lambda: config, owner="t1", on_result=results.append, stopping=stopping
    )
    try:
        dispatcher.tick()
        wait_until(lambda: results and not dispatcher.busy(), 10, "the poll done")
        assert [(r.source_id, r.status, r.new) for r in results] == [("a", PollStatus.OK, 2)]
        next_due = store.state("a").next_due_at
        assert next_due is not None and next_due > utcnow() + timedelta(minutes=50)
        dispatcher.tick()  # nothing is due: nothing claimed, nothing submitted
        assert not dispatcher.busy() and len(loopback.requests_to("/a.xml")) == 1
        due_now(store, "a")
        stopping.set()  # a stopping daemon claims nothing more
        dispatcher.tick()
        assert not dispatcher.busy() and len(loopback.requests_to("/a.xml")) == 1
    finally:
        assert dispatcher.stop(0.1, 5) == 0
        store.close()


def test_dispatcher_skips_a_source_another_instance_holds(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    url = loopback.add("/a.xml", rss("a"))
    config, store = setup(tmp_path, source("a", url, "1h"))
    held = store.claim_due(utcnow(), 1, "other", timedelta(minutes=5), ["a"], ahead=timedelta(0))
    assert [s.source_id for s in held] == ["a"]
    dispatcher = Dispatcher(
        store, lambda: config, owner="t1", on_result=lambda r: None, stopping=threading.Event()
    )
    try:
        dispatcher.tick()
        assert not dispatcher.busy() and not loopback.requests_to("/a.xml")
    finally:
        dispatcher.stop(0.1, 5)
        store.close()


def test_one_tick_polls_more_due_sources_than_workers(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """Issue 19: a claim takes one source per free worker; the polls that finish claim
    the rest, so the throughput is not ``workers`` sources per tick."""
    urls = [loopback.add(f"/{n}.xml", rss(f"s{n}")) for n in range(6)]
    config, store = setup(tmp_path, "".join(source(f"s{n}", u, "1h") for n, u in enumerate(urls)))
    config = config.model_copy(update={"limits": config.limits.model_copy(update={"workers": 2})})
    results: list[UpdateResult] = []
    dispatcher = Dispatcher(
        store, lambda: config, owner="t1", on_result=results.append, stopping=threading.Event()
    )
    try:
        dispatcher.tick()  # one tick, no timer: the rest is claimed as polls finish
        wait_until(lambda: len(results) == 6 and not dispatcher.busy(), 20, "6 polls")
        assert sorted(r.source_id for r in results) == [f"s{n}" for n in range(6)]
        assert all(len(loopback.requests_to(f"/{n}.xml")) == 1 for n in range(6))
    finally:
        dispatcher.stop(0.1, 5)
        store.close()


def test_a_due_source_is_claimed_wherever_it_is_in_a_long_list(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """Issue 19: the claim once named every source, the first 2,000 of them only; a
    source after those was never polled."""
    last = loopback.add("/last.xml", rss("last"))
    many = "".join(source(f"s{n:04d}", f"http://127.0.0.1:9/{n}", "1h") for n in range(2500))
    config, store = setup(tmp_path, many + source("z-last", last, "1h"))
    with store.engine.begin() as conn:  # only the last one is due
        conn.execute(
            text("UPDATE sources SET next_due_at = :far WHERE id != 'z-last'"),
            {"far": "2999-01-01 00:00:00.000000"},
        )
    results: list[UpdateResult] = []
    dispatcher = Dispatcher(
        store, lambda: config, owner="t1", on_result=results.append, stopping=threading.Event()
    )
    try:
        dispatcher.tick()
        wait_until(lambda: results and not dispatcher.busy(), 20, "the poll done")
        assert [(r.source_id, r.status) for r in results] == [("z-last", PollStatus.OK)]
    finally:
        dispatcher.stop(0.1, 5)
        store.close()


# ---------------------------------------------------------------------- writer


def test_writer_writes_what_any_instance_changed(tmp_path: Path, loopback: LoopbackServer) -> None:
    url = loopback.add("/a.xml", rss("a"))
    config, store = setup(tmp_path, source("a", url, "1h"))
    news = config.aggregator.output_dir / "news.atom"
    writer = OutputWriter(store, lambda: config)
    try:
        writer.write_all()
        assert news.exists() and "a 1" not in news.read_text()
        # another instance polls: its commit reaches this writer through the change counter
        fetcher = Fetcher(config.limits)
        ctx = UpdateContext(config, store, fetcher, utcnow, random.Random())
        poll_sources(ctx, config.sources, {})
        fetcher.close()
        writer.flush()
        assert "a 1" in news.read_text() and writer.pending() == set()
        news.unlink()
        writer.flush()  # nothing changed since: nothing written
        assert not news.exists()
        writer.mark({"news"})
        writer.flush()
        assert "a 1" in news.read_text()
    finally:
        store.close()


def test_writer_keeps_what_it_could_not_write(tmp_path: Path) -> None:
    config = load_config(write_main(tmp_path, ""))
    dead = Store.open(DEAD_DB, migrate=False)
    writer = OutputWriter(dead, lambda: config)
    writer.mark({"news"})
    writer.tick()  # the database does not answer: logged, kept for the next flush
    assert writer.pending() == {"news"}


# -------------------------------------------------------------------- reloader


def test_reloader_swaps_only_a_valid_config(tmp_path: Path) -> None:
    config, store = setup(tmp_path, source("a", "http://127.0.0.1:9/a", "1h"))
    reloader = Reloader(config.path, store)
    try:
        far = utcnow() + timedelta(hours=1)
        store.save_state(replace(store.state("a"), last_poll_at=utcnow(), next_due_at=far))
        write_main(
            tmp_path,
            source("a", "http://127.0.0.1:9/a", "10m") + source("b", "http://127.0.0.1:9/b", "1h"),
        )
        new = reloader.reload(config, busy=set(), workers=config.limits.workers)
        assert new is not None and [s.id for s in new.sources] == ["a", "b"]
        assert store.state("b").source_id == "b"  # the store knows the new source
        moved = store.state("a").next_due_at
        assert moved is not None and moved < far - timedelta(minutes=40)  # shorter interval
        (tmp_path / "aggregator.toml").write_text("[aggregator\n")
        assert reloader.reload(new, busy=set(), workers=config.limits.workers) is None
    finally:
        store.close()


LAST = NOW - timedelta(minutes=5)

# (case, last poll, next due, interval, URL changed) -> new next due (None: kept)
DUE = [
    ("new URL: now", LAST, NOW + timedelta(hours=1), timedelta(hours=1), True, NOW),
    ("shorter interval: from the last poll", LAST, NOW + timedelta(hours=1),
     timedelta(minutes=10), False, LAST + timedelta(minutes=10)),
    ("shorter than since the last poll: now", LAST, NOW + timedelta(hours=1),
     timedelta(minutes=1), False, NOW),
    ("already due sooner: kept", LAST, NOW + timedelta(minutes=2), timedelta(minutes=10), False,
     None),
    ("never polled: now", None, NOW + timedelta(hours=1), timedelta(minutes=10), False, NOW),
    ("no time yet", LAST, None, timedelta(minutes=10), False, LAST + timedelta(minutes=10)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("last", "next_due", "interval", "url_changed", "expect"),
    [c[1:] for c in DUE],
    ids=[c[0] for c in DUE],
)
def test_due_after_reload(
    last: datetime | None,
    next_due: datetime | None,
    interval: timedelta,
    url_changed: bool,
    expect: datetime | None,
) -> None:
    state = SourceState("a", last_poll_at=last, next_due_at=next_due)
    assert due_after_reload(state, interval, url_changed=url_changed, now=NOW) == expect


# ---------------------------------------------------------------------- health


def health(store: Store, config: Config, notifier: Notifier, tick: list[float]) -> Health:
    return Health(store, lambda: config, notifier, polling=lambda: 0, last_tick=lambda: tick[0])


def test_watchdog_only_while_the_database_answers(tmp_path: Path, notify: NotifyListener) -> None:
    config, store = setup(tmp_path, "")
    tick = [time.monotonic()]
    try:
        assert not health(
            Store.open(DEAD_DB, migrate=False), config, Notifier(notify.path), tick
        ).watchdog()
        assert not notify.times("WATCHDOG")
        alive = health(store, config, Notifier(notify.path), tick)
        assert alive.watchdog()
        assert notify.wait_for("WATCHDOG", "1", timeout=5)["STATUS"] == (
            "0 sources, 0 failing, 0 polling"
        )
        # a dispatcher that stopped ticking is a hang, whatever the database says
        tick[0] -= DISPATCH_STALL_SECONDS + 1
        assert not alive.watchdog()
    finally:
        store.close()


def test_health_counts_failing_sources(tmp_path: Path) -> None:
    config, store = setup(
        tmp_path,
        source("a", "http://127.0.0.1:9/a", "1h") + source("b", "http://127.0.0.1:9/b", "1h"),
    )
    try:
        store.save_state(replace(store.state("b"), status=PollStatus.FAILED))
        part = health(store, config, Notifier(""), [time.monotonic()])
        part.load()  # as the store remembers them
        assert part.status_line() == "STATUS=2 sources, 1 failing, 0 polling"
        part.record(UpdateResult("a", PollStatus.FAILED, error_kind="dns"))
        part.record(UpdateResult("b", PollStatus.OK))
        part.refused("reload refused at 12:00:00Z (see log)")
        assert part.status_line() == (
            "STATUS=2 sources, 1 failing, 0 polling; reload refused at 12:00:00Z (see log)"
        )
        part.keep_only(["b"])  # a reload removed a
        part.refused(None)
        assert part.status_line() == "STATUS=2 sources, 0 failing, 0 polling"
    finally:
        store.close()


# ------------------------------------------------------------- a poll that crashes


def test_a_database_failure_in_a_poll_is_kind_database(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    """The store fails mid-poll (a table goes while the feed is fetched): the poll's
    result says ``database``, the kind the README lists, not a crash of the caller."""
    holder: list[Store] = []

    def breaks_the_store(_request: Request) -> Response:
        with holder[0].engine.begin() as conn:
            conn.execute(text("DROP TABLE item_versions"))
        return Response(body=rss("a"), headers={"Content-Type": "application/rss+xml"})

    url = loopback.add("/a.xml", breaks_the_store)
    config, store = setup(tmp_path, source("a", url, "1h"))
    holder.append(store)
    fetcher = Fetcher(config.limits)
    try:
        ctx = UpdateContext(config, store, fetcher, utcnow, random.Random())
        [result] = poll_sources(ctx, config.sources, {})
        assert (result.status, result.error_kind) == (PollStatus.FAILED, "database")
        assert "item_versions" in (result.error_message or "")
    finally:
        fetcher.close()
        store.close()
