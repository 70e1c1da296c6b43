"""Health and watchdog: which sources fail, the STATUS= line, WATCHDOG=1 while all is well.

WATCHDOG=1 goes out only while the database answers and the dispatcher
ticks: systemd restarts a daemon that hangs, not one whose sources fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from aggregator import metrics
from aggregator.config import Config
from aggregator.model import PollStatus, UpdateResult
from aggregator.notify import Notifier
from aggregator.store import Store

log = logging.getLogger("aggregator.daemon")

#: no finished dispatcher tick for this long means it hangs: the watchdog goes quiet
DISPATCH_STALL_SECONDS = 300.0


class Health:
    """What ``systemctl status`` and the watchdog are told."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        notifier: Notifier,
        *,
        polling: Callable[[], int],
        last_tick: Callable[[], float],
    ) -> None:
        self.store = store
        self._config = config
        self._notifier = notifier
        self._polling = polling
        self._last_tick = last_tick
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        #: shown in STATUS= until a reload succeeds, so `systemctl status` tells the admin
        self._refused: str | None = None

    def load(self) -> None:
        """The failing sources as the store remembers them (at start)."""
        ids = {s.id for s in self._config().sources}
        failing = {
            s.source_id
            for s in self.store.states()
            if s.status == PollStatus.FAILED and s.source_id in ids
        }
        with self._lock:
            self._failing = failing
        metrics.set_failing_sources(len(failing))

    def record(self, result: UpdateResult) -> None:
        """One poll's outcome: the source fails now, or no longer."""
        with self._lock:
            if result.status == PollStatus.FAILED:
                self._failing.add(result.source_id)
            else:
                self._failing.discard(result.source_id)
            count = len(self._failing)
        metrics.set_failing_sources(count)

    def keep_only(self, source_ids: Iterable[str]) -> None:
        """Forget removed sources (a reload)."""
        with self._lock:
            self._failing &= set(source_ids)

    def refused(self, reason: str | None) -> None:
        """A reload was refused (``reason``), or one succeeded (None)."""
        with self._lock:
            self._refused = reason

    def status_line(self) -> str:
        enabled = len([s for s in self._config().sources if s.enabled])
        with self._lock:
            failing = len(self._failing)
            refused = f"; {self._refused}" if self._refused else ""
        return f"STATUS={enabled} sources, {failing} failing, {self._polling()} polling{refused}"

    def watchdog(self) -> bool:
        """WATCHDOG=1 only while the database answers and the dispatcher ticks."""
        stalled = time.monotonic() - self._last_tick()
        if stalled > DISPATCH_STALL_SECONDS:
            log.error("dispatcher stuck for %.0fs; withholding WATCHDOG=1", stalled)
            return False
        try:
            self.store.ping()
        except Exception as exc:
            log.error("database does not answer; withholding WATCHDOG=1: %s", exc)
            return False
        return self._notifier.send("WATCHDOG=1", self.status_line())
