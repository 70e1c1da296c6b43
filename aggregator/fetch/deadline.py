"""The total deadline of one fetch, enforced even against a server that trickles.

Socket timeouts bound each wait for bytes, not the whole exchange: a server
sending one byte per second never trips a 30 s read timeout. So each fetch
arms a deadline with one shared watcher thread (a heap of deadlines; a
``threading.Timer`` per fetch cost a thread start per request). Every socket
the fetch uses registers with it (from ``transport.py``, through a
thread-local), and when the time is up the watcher shuts those sockets down,
which wakes the blocked read in the worker. The fetcher then sees ``expired``
and reports a timeout, whatever error or short body the shutdown caused.

Not covered: name resolution (``getaddrinfo`` cannot be interrupted; the
connect timeout does not bound it either) and the wait for a host slot before
the first request (other fetches' deadlines bound that).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time

_current = threading.local()


class _Watcher:
    """One daemon thread that fires every armed deadline at its time, earliest first."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Deadline, int]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, when: float, deadline: Deadline, token: int) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), deadline, token))
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._thread = threading.Thread(
                    target=self._run, name="fetch-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and not self._heap[0][2].armed_with(self._heap[0][3]):
                        heapq.heappop(self._heap)  # stopped or re-armed since
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        _, _, deadline, token = heapq.heappop(self._heap)
                        break
                    self._cond.wait(delay)
            deadline.fire(token)


_watcher = _Watcher()


class Deadline:
    """Armed by ``start()`` (the first call counts), disarmed by ``stop()``; one per fetch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at: float | None = None
        self.expired = False
        self.cut_short = False  #: brought forward by ``cut()`` (a stopping daemon)
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._token = 0  #: which arming is current; changed by re-arming and by stop()
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
            self._arm(seconds)

    def _arm(self, seconds: float) -> None:
        """Called with ``_lock`` held; replaces any earlier arming."""
        self._token += 1
        _watcher.add(time.monotonic() + max(seconds, 0.0), self, self._token)

    def armed_with(self, token: int) -> bool:
        return token == self._token and not self._stopped

    def fire(self, token: int) -> None:
        """The watcher's call at the armed time; ignored if stopped or re-armed since."""
        with self._lock:
            if not self.armed_with(token):
                return
        self._expire()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._token += 1
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
