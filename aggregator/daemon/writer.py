"""Writing outputs: rewrite the categories this or another instance changed.

Changes reach this part two ways: ``mark`` (this instance's polls, retention,
a reload) and the store's change counter (every instance's commits). It runs
on its own timer, so rendering never delays a claim.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.outputs import write_outputs
from aggregator.store import Store

log = logging.getLogger("aggregator.daemon")


class OutputWriter:
    """The categories still to write, and the change counter the files are complete at."""

    def __init__(self, store: Store, config: Callable[[], Config]) -> None:
        self.store = store
        self._config = config
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._seen_counter = 0  #: the store's change counter last written

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
            write_outputs(self._config(), self.store, None)
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
        """Rewrite what changed since the last flush; on failure keep it all for the next."""
        with self._lock:
            changed, self._pending = self._pending, set()
        try:
            news = self.store.changed_since(self._seen_counter)
            changed |= news.categories
            if changed:
                write_outputs(self._config(), self.store, changed, since=self._seen_counter)
        except BaseException:
            self.mark(changed)
            raise
        self._seen_counter = news.counter
