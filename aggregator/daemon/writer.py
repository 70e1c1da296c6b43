"""Writing outputs: rewrite the categories this or another instance changed.

Changes reach this part two ways: ``mark`` (this instance's polls, retention,
a reload) and the store's change counter (every instance's commits). It runs
on its own timer, so rendering never delays a claim.

status.html is owed after any change (every saved poll is one) but reads
every source's row: 0.7 s at 10,000 sources, where polls are saved every
second. So after a render of d seconds the next waits ``STATUS_SPACING`` × d
(at most about 1/STATUS_SPACING of a core, however many polls); what is owed
is written once that has passed, from the store as it is then, so every
instance still ends on the same bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.outputs import WriteResult, write_outputs
from aggregator.store import Store
from aggregator.store.health import STATUS

log = logging.getLogger("aggregator.daemon")

#: after a status.html render of d seconds, the next one waits this many times d
STATUS_SPACING = 20.0


@dataclass(frozen=True, slots=True)
class StatusSpacing:
    """When status.html was last rendered and what it took (monotonic seconds)."""

    at: float | None = None
    took: float = 0.0

    def due(self, now: float) -> bool:
        return self.at is None or now - self.at >= STATUS_SPACING * self.took

    def after(self, result: WriteResult, now: float) -> StatusSpacing:
        """The spacing after a write (one that left the page alone changes nothing)."""
        if result.status_seconds is None:
            return self
        return StatusSpacing(now, result.status_seconds)


class OutputWriter:
    """The categories still to write, and the change counter the files are complete at."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._seen_counter = 0  #: the store's change counter last written
        self._status_owed = False  #: a change not yet on status.html
        self._status = StatusSpacing()

    def mark(self, categories: Iterable[str]) -> None:
        """These categories changed: write them at the next flush."""
        with self._lock:
            self._pending |= set(categories)

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def write_all(self) -> None:
        """Every output, as at start; a failure is logged, the next flush catches up."""
        try:
            # the counter first: a change committed during the full write is written
            # again at the next flush, never lost
            self._seen_counter = self.store.change_counter()
            result = write_outputs(self._config(), self.store, None)
            self._status = self._status.after(result, self._clock())
        except Exception:
            log.exception("initial write failed")

    def tick(self) -> None:
        """``flush``, with a failure logged (the timer's job)."""
        try:
            self.flush()
        except StoreError as exc:
            log.error("database error while writing feeds: %s", exc)
        except Exception:
            log.exception("writing feeds failed")

    def flush(self) -> None:
        """Rewrite what changed since the last flush; on failure keep it all for the next.
        status.html: when owed and its spacing has passed."""
        with self._lock:
            changed, self._pending = self._pending, set()
        try:
            news = self.store.changed_since(self._seen_counter)
            changed |= news.categories
            owed = self._status_owed or bool(changed)
            status = owed and self._status.due(self._clock())
            if changed - {STATUS} or status:
                result = write_outputs(
                    self._config(), self.store, changed, since=self._seen_counter, status=status
                )
                self._status = self._status.after(result, self._clock())
        except BaseException:
            self.mark(changed)
            raise
        self._status_owed = owed and not status
        self._seen_counter = news.counter
