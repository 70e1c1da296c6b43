"""The fast paths of issue 8 behave as the slow ones did: batched state saves,
kept-alive connections, one deadline watcher, alembic only when migrating; and
a poll of many sources holds few of them at once (issue 19)."""

from __future__ import annotations

import gc
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator import poll
from aggregator.cli import settling
from aggregator.config import Limits, SourceConfig, load_config
from aggregator.fetch import Fetcher, transport
from aggregator.fetch.deadline import Deadline
from aggregator.model import NotModified, PollStatus, UpdateResult
from aggregator.poll import utcnow
from aggregator.store import Store
from aggregator.store import engine as engines
from aggregator.update import UpdateContext
from tests.test_daemon import source, write_main
from tests.test_fetch import FEED, LIMITS, job
from tests.test_store import CATEGORIES, T0, src

# states ----------------------------------------------------------------------------


def test_save_states_writes_all_and_releases_only_its_own_leases(store: Store) -> None:
    store.sync_config([src("a"), src("b"), src("c")], CATEGORIES, T0)
    lease = timedelta(minutes=5)
    a, b = store.claim_due(T0, 2, "one", lease, ["a", "b"])
    c = store.state("c")
    store.save_states(
        [
            replace(a, next_due_at=T0, status=PollStatus.OK, etag='"a1"'),
            replace(b, next_due_at=T0, status=PollStatus.UNCHANGED),
            replace(c, next_due_at=T0, error_kind="timeout", status=PollStatus.FAILED),
        ],
        release_lease_of="one",
    )
    assert store.state("a").etag == '"a1"'
    assert store.state("b").status == PollStatus.UNCHANGED
    assert store.state("c").error_kind == "timeout"
    assert [s.source_id for s in store.claim_due(T0, 10, "two", lease)] == ["a", "b", "c"]


def test_save_states_of_nothing_is_a_no_op(store: Store) -> None:
    store.save_states([])


def test_poll_sources_submits_a_few_polls_per_worker_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: 10,000 sources were 10,000 futures at once (~18 MB); now two per worker
    are submitted and the next one as each finishes. Every poll here waits until as many
    are submitted as the bound allows, so submitting them all at once would show."""
    sources = "".join(source(f"s{n:02d}", f"http://127.0.0.1:9/{n}", "1h") for n in range(40))
    config = load_config(write_main(tmp_path, sources))
    bound = config.limits.workers * poll.IN_FLIGHT_PER_WORKER
    assert bound < 40
    lock, counts, go = threading.Lock(), {"now": 0, "most": 0}, threading.Event()

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                counts["now"] += 1
                counts["most"] = max(counts["most"], counts["now"])
                if counts["now"] >= bound:
                    go.set()
            future = super().submit(fn, *args, **kwargs)
            future.add_done_callback(lambda _: done())
            return future

    def done() -> None:
        with lock:
            counts["now"] -= 1

    def fake_update(ctx: UpdateContext, source: SourceConfig, state: object) -> UpdateResult:
        assert go.wait(10), "fewer polls submitted than the bound"
        return UpdateResult(source.id, PollStatus.UNCHANGED)

    monkeypatch.setattr(poll, "ThreadPoolExecutor", Counting)
    monkeypatch.setattr(poll, "update_source", fake_update)
    ctx = UpdateContext(config, None, None, utcnow, random.Random())  # type: ignore[arg-type]
    results = poll.poll_sources(ctx, config.sources, {})
    assert [r.source_id for r in results] == [s.id for s in config.sources]
    assert counts["most"] == bound


# connections -----------------------------------------------------------------------


def test_304_and_full_bodies_keep_the_connection(loopback, monkeypatch) -> None:
    opened: list[int] = []
    real = transport.open_socket

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(transport, "open_socket", counting)
    url = loopback.url_for(f"/files/{FEED}")
    with Fetcher(LIMITS) as fetcher:
        first = fetcher.fetch(job(url))
        for _ in range(3):
            assert isinstance(fetcher.fetch(job(url, etag=first.etag)), NotModified)
        assert fetcher.fetch(job(url)).body == first.body
    assert len(opened) == 1


# deadlines -------------------------------------------------------------------------


def _watched(seconds: float) -> tuple[Deadline, socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    deadline = Deadline(seconds)
    deadline.start()
    deadline.watch(ours)
    return deadline, ours, theirs


def test_deadlines_fire_in_order_and_stopped_ones_never() -> None:
    late, late_sock, late_peer = _watched(0.6)
    early, early_sock, early_peer = _watched(0.2)
    stopped, stopped_sock, stopped_peer = _watched(0.1)
    stopped.stop()
    try:
        early_sock.settimeout(5)
        assert early_sock.recv(1) == b""  # shut down by the watcher
        assert early.expired and not late.expired
        late_sock.settimeout(5)
        assert late_sock.recv(1) == b""
        assert late.expired
        time.sleep(0.1)
        assert not stopped.expired
        stopped_peer.sendall(b"x")
        assert stopped_sock.recv(1) == b"x"
    finally:
        for s in (late_sock, late_peer, early_sock, early_peer, stopped_sock, stopped_peer):
            s.close()


def test_cut_brings_an_armed_deadline_forward() -> None:
    deadline, sock, peer = _watched(30)
    try:
        started = time.monotonic()
        deadline.cut(0.1)
        sock.settimeout(5)
        assert sock.recv(1) == b""
        assert deadline.expired and deadline.cut_short
        assert time.monotonic() - started < 2
    finally:
        sock.close()
        peer.close()


def test_many_fetches_start_no_thread_each(loopback) -> None:
    import threading

    url = loopback.url_for(f"/files/{FEED}")
    with Fetcher(Limits(fetch_deadline=timedelta(seconds=30))) as fetcher:
        fetcher.fetch(job(url))
        before = threading.active_count()
        for _ in range(5):
            fetcher.fetch(job(url))
        assert threading.active_count() <= before


# migrations ------------------------------------------------------------------------


def test_head_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(engines.MIGRATIONS))
    assert engines.head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_a_current_database_opens_without_alembic(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = engines.make_engine(url)
    try:
        assert not engines.is_current(engine)
    finally:
        engine.dispose()
    Store.open(url).close()  # migrates
    code = (
        "import sys; from aggregator.store import Store; "
        f"Store.open({url!r}).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_save_states_makes_rows_the_config_never_named(store: Store) -> None:
    store.sync_config([src("a")], CATEGORIES, T0)
    a = store.state("a")
    store.save_states([replace(a, etag='"1"'), replace(a, source_id="ghost", etag='"2"')])
    assert (store.state("a").etag, store.state("ghost").etag) == ('"1"', '"2"')


# start-up --------------------------------------------------------------------------


def test_settling_freezes_what_it_loads_and_always_turns_the_collector_back_on() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with settling():
            assert not gc.isenabled()  # no collections while the modules load
            kept = [[] for _ in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(kept)
        with pytest.raises(ValueError), settling():
            raise ValueError("a config error")
        assert gc.isenabled()  # a failed load leaves the collector on (serve, tests)
    finally:
        gc.unfreeze()
        gc.enable()
