"""Process life of ``aggregator run``: the parts, the timer that drives them, signals.

    start    open + migrate the store, re-apply changed rules, start HTTP (listening),
             write, READY=1
    tick     every second: claim due sources, poll them (dispatch.Dispatcher)
    leases   renew the leases of polls still running, every third of a lease
    write    every second, on its own timer (rendering never delays a claim):
             rewrite the categories this or another instance changed (writer.OutputWriter)
    watchdog WATCHDOG=1 at half of WATCHDOG_USEC, only while the database
             answers and the dispatcher is not stuck (health.Health)
    prune    at start, then hourly, when ``retention`` is set
    SIGHUP   RELOADING=1, validate every file (rules too), swap only if valid
             (reload.Reloader), re-apply changed rules to the stored items, READY=1
    SIGTERM  warm stop: STOPPING=1, no new polls, in-flight fetches are cut
             after FETCH_GRACE_SECONDS; a second SIGTERM/SIGINT: cold stop at once

The schedule lives in the database (``next_due_at`` and a lease per source),
so several instances can share one database; APScheduler is only the local
timer that runs the parts. Each part takes the store and a way to read the
running config, so a test drives it alone.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.config import Config
from aggregator.daemon.dispatch import TICK_SECONDS, Dispatcher
from aggregator.daemon.health import Health
from aggregator.daemon.reload import Reloader
from aggregator.daemon.writer import OutputWriter
from aggregator.errors import StoreError
from aggregator.model import UpdateResult
from aggregator.notify import Notifier, watchdog_interval
from aggregator.parse.budget import prewarm
from aggregator.poll import open_store, reapply_rules, utcnow
from aggregator.retention import prune_expired
from aggregator.rules import NO_RULES, RuleSet
from aggregator.store import Store

if TYPE_CHECKING:
    from aggregator.serve import ServerHandle

log = logging.getLogger("aggregator.daemon")

#: how long a warm stop waits for in-flight polls in all
WARM_STOP_SECONDS = 10.0
#: in-flight fetches are cut (their sockets shut) this long after a stop signal
FETCH_GRACE_SECONDS = 3.0
RETENTION_EVERY = timedelta(hours=1)


class Daemon:
    """The parts of ``aggregator run``, started, driven and stopped together."""

    def __init__(self, config_path: Path, config: Config, *, notifier: Notifier | None = None):
        self.config_path = config_path
        self.config = config
        self.notifier = notifier or Notifier()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.store: Store | None = None
        self.rules: RuleSet = NO_RULES  #: compiled at start, swapped by a reload
        self.server: ServerHandle | None = None
        self._signals = 0
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def attach(self, store: Store) -> None:
        """Make the parts over ``store``."""
        self.store = store
        self.writer = OutputWriter(store, lambda: self.config)
        self.dispatcher = Dispatcher(
            store,
            lambda: self.config,
            owner=self.owner,
            on_result=self._on_result,
            stopping=self.stop_requested,
            rules=lambda: self.rules,
        )
        self.health = Health(
            store,
            lambda: self.config,
            self.notifier,
            polling=lambda: len(self.dispatcher.busy()),
            last_tick=lambda: self.dispatcher.last_tick,
        )
        self.reloader = Reloader(self.config_path, store)

    def run(self) -> int:
        self._install_signals()
        try:
            self.attach(open_store(self.config))
            assert self.store is not None
            self.rules = reapply_rules(self.config, self.store)
        except StoreError as exc:
            log.error("database unavailable: %s", exc)
            if self.store is not None:
                self.store.close()
            return 1
        assert self.store is not None
        try:
            self.server = self._start_server()
        except OSError as exc:
            log.error("cannot serve HTTP on %s: %s", self.config.server.listen, exc)
            self.store.close()
            return 1
        self.health.load()
        prewarm()  # a parse child ready before the first large body (issue 13)
        self.writer.write_all()
        self._schedule_jobs()
        self.notifier.send("READY=1", self.health.status_line())
        log.info("running as %s with %d sources", self.owner, len(self.config.sources))
        while not self.stop_requested.is_set():
            if self.reload_requested.wait(0.2):
                self.reload_requested.clear()
                if not self.stop_requested.is_set():
                    self.reload()
        return self._stop()

    def reload(self) -> bool:
        """Tell systemd, let the reloader validate and sync; swap only what it accepted."""
        self.notifier.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading"
        )
        old = self.config
        new = self.reloader.reload(
            old, busy=self.dispatcher.busy(), workers=self.dispatcher.workers
        )
        if new is not None:
            if new.rules != old.rules:
                self.rules = self.reloader.reapply(new)
            self.config = new
            if new.limits != old.limits:
                self.dispatcher.use_limits(new.limits)
            self.writer.mark(new.categories)
            self.health.keep_only(s.id for s in new.sources)
        self.health.refused(
            None if new is not None else f"reload refused at {utcnow():%H:%M:%SZ} (see log)"
        )
        self.notifier.send("READY=1", self.health.status_line())
        return new is not None

    def prune(self) -> None:
        """Retention: drop expired items; their categories are written again."""
        if self.stop_requested.is_set() or self.store is None:
            return
        try:
            changed = prune_expired(self.config, self.store, utcnow())
        except StoreError as exc:
            log.error("retention: database error: %s", exc)
            return
        self.writer.mark(changed)

    def _on_result(self, result: UpdateResult) -> None:
        self.writer.mark(result.changed_categories)
        self.health.record(result)

    def _schedule_jobs(self) -> None:
        once = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        now = datetime.now(UTC)
        jobs: list[tuple[Callable[[], object], str, float, datetime | None]] = [
            (self.dispatcher.tick, "dispatch", TICK_SECONDS, None),
            (self.dispatcher.renew_leases, "leases", 1.0, None),
            (self._write_tick, "write", TICK_SECONDS, None),
            (self.prune, "retention", RETENTION_EVERY.total_seconds(), now),
        ]
        beat = watchdog_interval()
        if beat:
            jobs.append((self.health.watchdog, "watchdog", beat, now))
        for job, name, seconds, first in jobs:
            # next_run_time=None would add the job paused: leave it out for "after one interval"
            at = {"next_run_time": first} if first else {}
            self._scheduler.add_job(job, "interval", seconds=seconds, id=name, **once, **at)
        self._scheduler.start()

    def _write_tick(self) -> None:
        if not self.stop_requested.is_set():
            self.writer.tick()

    def _stop(self) -> int:
        """Warm stop: no new polls; running fetches are cut after a short grace."""
        assert self.store is not None
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        log.info(
            "stopping: in-flight fetches get %.0fs, polls %.0fs in all",
            FETCH_GRACE_SECONDS,
            WARM_STOP_SECONDS,
        )
        self._scheduler.shutdown(wait=False)
        left = self.dispatcher.stop(FETCH_GRACE_SECONDS, WARM_STOP_SECONDS)
        try:
            self.writer.flush()
        except Exception:
            log.exception("final write failed")
        if self.server is not None:
            self.server.stop()
        self.store.close()
        if left:
            log.warning("%d polls still in flight at exit; their leases will expire", left)
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals >= 2:
                log.warning("second %s: cold stop", signal.Signals(signum).name)
                self.notifier.send("STOPPING=1")
                logging.shutdown()
                os._exit(1)
            log.info("%s: warm stop", signal.Signals(signum).name)
            self.stop_requested.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _start_server(self) -> ServerHandle:
        """Returns once the socket listens (start_server waits for uvicorn)."""
        from aggregator.serve import start_server

        return start_server(
            self.config,
            store_provider=lambda: self.store,
            health_provider=lambda: self.store is not None and not self.stop_requested.is_set(),
            config_provider=lambda: self.config,
        )


def run_daemon(config_path: Path, config: Config) -> int:
    return Daemon(config_path, config).run()
