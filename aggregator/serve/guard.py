"""Connections under abuse: a bound on how many are open, and a deadline on each request.

uvicorn neither bounds open connections (``limit_concurrency`` answers 503 only
once a request is complete) nor times out a request whose head never ends: its
keep-alive timer is cancelled by the first byte. So 1,100 clients that each
send half a request hold every file descriptor of a service (1,024) for good,
and the next reader's connection waits in the backlog. This protocol gives
each request ``request_timeout`` from its connection (or the end of the last
answer) to arrive whole, and keeps at most ``limit`` connections open: a new
one pushes out the oldest that is only waiting (half-sent or idle), so a
reader who sends a whole request is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("aggregator.serve")

#: file descriptors kept free of connections, for the store, feed files, fetches and logs
RESERVED_FILES = 128
#: no more connections than this, however high the file limit
MAX_CONNECTIONS = 4096


def connection_limit(max_files: int | None = None) -> int:
    """Half the process's file limit (``LimitNOFILE``), at most 4,096 and at least 16."""
    if max_files is None:
        max_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if max_files == resource.RLIM_INFINITY or max_files <= 0:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, max_files // 2, max_files - RESERVED_FILES))


class Waiting:
    """The connections of one server that wait for a request, oldest first, with their timers."""

    def __init__(self, limit: int, request_timeout: float) -> None:
        self.limit = limit
        self.request_timeout = request_timeout
        self.open = 0
        self.timers: OrderedDict[GuardedProtocol, asyncio.TimerHandle] = OrderedDict()
        self.evicted = 0  #: connections pushed out to make room (for tests and logs)
        self.timed_out = 0

    def wait(self, conn: GuardedProtocol) -> None:
        """``conn`` now waits for a request: it is the newest, and its deadline starts."""
        self.stop(conn)
        self.timers[conn] = conn.loop.call_later(self.request_timeout, self._expire, conn)

    def stop(self, conn: GuardedProtocol) -> None:
        timer = self.timers.pop(conn, None)
        if timer is not None:
            timer.cancel()

    def make_room(self, newcomer: GuardedProtocol) -> bool:
        """Over the limit, close the oldest waiting connection; False when none can go."""
        if self.open <= self.limit:
            return True
        for conn in self.timers:
            if conn is not newcomer:
                self.evicted += 1
                conn.drop()
                return True
        return False

    def _expire(self, conn: GuardedProtocol) -> None:
        self.timers.pop(conn, None)
        self.timed_out += 1
        conn.drop()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request deadline and the connection bound."""

    waiting: ClassVar[Waiting]
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting.open += 1
        self.waiting.wait(self)
        if not self.waiting.make_room(self):
            log.warning("%d connections busy answering: refusing one", self.waiting.open - 1)
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.open -= 1
        self.waiting.stop(self)
        super().connection_lost(exc)

    def on_message_complete(self) -> None:
        self.waiting.stop(self)  # the whole request is in: answering takes what it takes
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.waiting.wait(self)  # kept alive: the next request has its own deadline

    def drop(self) -> None:
        self.waiting.stop(self)
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limit: int, request_timeout: float) -> type[GuardedProtocol]:
    """A protocol class of its own for one server (uvicorn makes one instance a connection)."""
    attrs: dict[str, Any] = {"waiting": Waiting(limit, request_timeout)}
    return type("GuardedProtocol", (GuardedProtocol,), attrs)
