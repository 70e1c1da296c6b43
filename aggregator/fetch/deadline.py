"""The total deadline of one fetch, enforced even against a server that trickles.

Socket timeouts bound each wait for bytes, not the whole exchange: a server
sending one byte per second never trips a 30 s read timeout. So each fetch
arms a timer; every socket the fetch uses registers with it (from
``transport.py``, through a thread-local), and when the time is up the timer
shuts those sockets down, which wakes the blocked read in the worker. The
fetcher then sees ``expired`` and reports a timeout, whatever error or short
body the shutdown caused.

Not covered: name resolution (``getaddrinfo`` cannot be interrupted; the
connect timeout does not bound it either) and the wait for a host slot before
the first request (other fetches' deadlines bound that).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_current = threading.local()


class Deadline:
    """Armed by ``start()`` (the first call counts), disarmed by ``stop()``; one per fetch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at: float | None = None
        self.expired = False
        self.cut_short = False  #: brought forward by ``cut()`` (a stopping daemon)
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if self.expires_at is None:
                self.expires_at = time.monotonic() + self.seconds
                _current.deadline = self
                self._arm(self.seconds)

    def cut(self, seconds: float) -> None:
        """Bring the deadline forward to at most ``seconds`` from now; never later."""
        with self._lock:
            if self._stopped:
                return
            self.cut_short = True
            if self.expires_at is None:
                self.seconds = min(self.seconds, seconds)  # start() arms the shorter one
                return
            if self.expires_at - time.monotonic() <= seconds:
                return
            self.expires_at = time.monotonic() + seconds
            if self._timer is not None:
                self._timer.cancel()
            self._arm(seconds)

    def _arm(self, seconds: float) -> None:
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        if getattr(_current, "deadline", None) is self:
            _current.deadline = None
        with self._lock:
            self._sockets.clear()

    def remaining(self) -> float:
        if self.expires_at is None:
            return self.seconds
        return max(0.0, self.expires_at - time.monotonic())

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            if sock not in self._sockets:
                self._sockets.append(sock)
            late = self.expired
        if late:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def watch_current(sock: socket.socket | None) -> None:
    """Register ``sock`` with the deadline of the fetch running on this thread, if any."""
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops the SSL
    # object under the reading thread instead of just waking it up.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
