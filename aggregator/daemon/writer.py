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

A file that could not be written (an entry that breaks its renderer, a post)
is written again at the next flush, changed or not; failing again, it waits
2, 4, 8 ... s (at most ``RETRY_MAX``), so a lasting fault is logged now and
then rather than every second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.outputs import POSTS, WriteResult, write_outputs
from aggregator.store import Store
from aggregator.store.health import STATUS

log = logging.getLogger("aggregator.daemon")

#: after a status.html render of d seconds, the next one waits this many times d
STATUS_SPACING = 20.0
#: s: the longest wait before a file that keeps failing is tried again
RETRY_MAX = 300.0


def retry_delay(failures: int) -> float:
    """After the first failure in a row: the next flush; then 2, 4, 8 ... s."""
    return 0.0 if failures <= 1 else min(RETRY_MAX, 2.0 ** (failures - 1))


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
        self._posts_since: int | None = None  #: the counter the posts are complete at
        self._failures: dict[str, int] = {}  #: id to write again -> failures in a row
        self._retry_at: dict[str, float] = {}  #: id to write again -> when (clock)

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
            counter = self.store.change_counter()
            self._seen_counter = counter
            result = write_outputs(self._config(), self.store, None)
            self._status = self._status.after(result, self._clock())
            self._failed(set(), result)
            if POSTS not in result.retry:
                self._posts_since = counter
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
        """Rewrite what changed since the last flush, and what failed before and is due
        again; on failure keep it all for the next. status.html: when owed and its
        spacing has passed."""
        with self._lock:
            changed, self._pending = self._pending, set()
        now = self._clock()
        again = {key for key, at in self._retry_at.items() if at <= now}
        result = None
        try:
            news = self.store.changed_since(self._seen_counter)
            changed |= news.categories
            owed = self._status_owed or bool(changed)
            status = owed and self._status.due(now)
            if changed - {STATUS} or status or again:
                result = write_outputs(
                    self._config(),
                    self.store,
                    changed | (again - {POSTS}),
                    since=self._posts_since,
                    status=status,
                )
                self._status = self._status.after(result, self._clock())
        except BaseException:
            self.mark(changed)
            raise
        if result is not None:
            self._failed(changed | again, result)
            if POSTS not in result.retry:
                self._posts_since = news.counter
        failed_status = result is not None and STATUS in result.retry
        self._status_owed = (owed and not status) or failed_status
        self._seen_counter = news.counter

    def _failed(self, tried: set[str], result: WriteResult) -> None:
        """Count the failures in a row of what ``result`` says to write again (status.html
        stays owed instead); forget those of the rest that was tried."""
        now = self._clock()
        for key in result.retry - {STATUS}:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._retry_at[key] = now + retry_delay(failures)
        for key in tried - result.retry:
            self._failures.pop(key, None)
            self._retry_at.pop(key, None)
