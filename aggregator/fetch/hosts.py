"""Per-host politeness: at most N requests in flight to one host, whatever the pool size."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HostLimiter:
    """A semaphore per host name, made on first use and dropped when idle.

    Share one between fetchers (e.g. feeds and detail requests) so the limit
    holds across them.
    """

    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[threading.BoundedSemaphore, int]] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of ``host``'s slots for the duration of the block (waits for a free one)."""
        key = host.lower().rstrip(".")
        with self._lock:
            sem, users = self._slots.get(key) or (threading.BoundedSemaphore(self.per_host), 0)
            self._slots[key] = (sem, users + 1)
        try:
            with sem:
                yield
        finally:
            with self._lock:
                sem, users = self._slots[key]
                if users == 1:
                    del self._slots[key]
                else:
                    self._slots[key] = (sem, users - 1)

    def busy(self) -> dict[str, int]:
        """Hosts with requests in flight or waiting, and how many (for tests and metrics)."""
        with self._lock:
            return {host: users for host, (_, users) in self._slots.items()}
