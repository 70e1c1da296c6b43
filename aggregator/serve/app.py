"""The raw ASGI app: feeds and indexes from ``output_dir``, ``/healthz``, ``/metrics``.

path ─┬─ /healthz ─▶ health.check_health (in a thread, with a deadline)
      ├─ /status ─▶ statuspage.status_page, live from the store, as of now (same pool)
      ├─ /metrics ─▶ metrics.exposition (prometheus_client)
      ├─ file_name() ─▶ FileCache ─▶ 304 | 200 (gzip when accepted) | 404
      └─ anything else ─▶ 404;  a method other than GET/HEAD ─▶ 405
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aggregator import metrics
from aggregator.errors import StoreError
from aggregator.serve.files import EMPTY_BODY, FileCache, Message, accepts_gzip, file_name
from aggregator.serve.health import (
    ConfigProvider,
    HealthProvider,
    StoreProvider,
    check_health,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: /healthz gives up on a database that neither answers nor refuses within this
HEALTH_DEADLINE = 5.0


def _plain(status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> Message:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(text)),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    return {"type": "http.response.start", "status": status, "headers": headers}


_NOT_FOUND = (_plain(404, b"not found\n"), b"not found\n")
_NOT_ALLOWED = (
    _plain(405, b"method not allowed\n", [(b"allow", b"GET, HEAD")]),
    b"method not allowed\n",
)


class FeedApp:
    """ASGI 3 app; one per server. Not thread-safe: it lives on one event loop."""

    def __init__(
        self,
        config_provider: ConfigProvider,
        store_provider: StoreProvider,
        health_provider: HealthProvider,
    ) -> None:
        config = config_provider()
        self.files = FileCache(
            config.aggregator.output_dir, int(config.server.cache_max_age.total_seconds())
        )
        self._config = config_provider
        self._store = store_provider
        self._health = health_provider
        self._special = {
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/status": self._status,
        }
        self._found: dict[str, str] = {}  #: request path -> name of a file that was there
        # Separate threads, so a database that hangs /healthz never delays reading a feed.
        self._file_pool = ThreadPoolExecutor(2, thread_name_prefix="serve-files")
        self._health_pool = ThreadPoolExecutor(2, thread_name_prefix="serve-health")

    def close(self) -> None:
        """Let go of the worker threads (a /healthz stuck on the database is not waited for)."""
        self._file_pool.shutdown(wait=False, cancel_futures=True)
        self._health_pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        # paths of files found before skip the regex; only those are kept, so it stays small
        name = self._found.get(path) or file_name(path)
        if name is None:
            special = self._special.get(path)
            if special is None:
                return await _fixed(send, scope, *_NOT_FOUND)
            if scope["method"] not in ("GET", "HEAD"):
                return await _fixed(send, scope, *_NOT_ALLOWED)
            return await special(scope, send)
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return await _fixed(send, scope, *_NOT_ALLOWED)

        cached, exists = self.files.fresh(name)
        if cached is None:
            if exists:
                loop = asyncio.get_running_loop()
                cached = await loop.run_in_executor(self._file_pool, self.files.load, name)
            if cached is None:
                self._found.pop(path, None)
                return await _fixed(send, scope, *_NOT_FOUND)
            self._found[path] = name

        if_none_match = if_modified_since = accept_encoding = None
        for header, value in scope["headers"]:
            if header == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match + b"," + value
            elif header == b"if-modified-since":
                if_modified_since = value
            elif header == b"accept-encoding":
                accept_encoding = value
        gz = accepts_gzip(accept_encoding)
        if cached.not_modified(if_none_match, if_modified_since):
            metrics.count_response(304)
            await send(cached.start_304_gz if gz else cached.start_304)
            await send(EMPTY_BODY)
            return
        metrics.count_response(200)
        await send(cached.start_200_gz if gz else cached.start_200)
        if method == "HEAD":
            await send(EMPTY_BODY)
        else:
            await send(cached.body_gz_msg if gz else cached.body_msg)

    async def _healthz(self, scope: Scope, send: Send) -> None:
        try:
            loop = asyncio.get_running_loop()
            status, doc = await asyncio.wait_for(
                loop.run_in_executor(
                    self._health_pool, check_health, self._config(), self._store, self._health
                ),
                HEALTH_DEADLINE,
            )
        except TimeoutError:
            metrics.record_database_error("health")
            status, doc = (
                503,
                {
                    "status": "unavailable",
                    "database": "unavailable",
                    "error": f"the database did not answer within {HEALTH_DEADLINE:g}s",
                    "sources": [],
                },
            )
        body = json.dumps(doc, ensure_ascii=False, indent=1).encode() + b"\n"
        await _respond(send, scope, status, b"application/json; charset=utf-8", body)

    async def _status(self, scope: Scope, send: Send) -> None:
        """status.html rendered now from the store, as of now (the file is as of the
        newest poll stored, and the same on every instance)."""
        loop = asyncio.get_running_loop()
        try:
            body = await asyncio.wait_for(
                loop.run_in_executor(self._health_pool, self._status_page), HEALTH_DEADLINE
            )
        except (TimeoutError, LookupError, StoreError) as exc:
            text = f"status unavailable: {exc or 'the database did not answer'}\n".encode()
            return await _respond(send, scope, 503, b"text/plain; charset=utf-8", text)
        await _respond(send, scope, 200, b"text/html; charset=utf-8", body)

    def _status_page(self) -> bytes:
        from aggregator.statuspage import status_page

        store = self._store()
        if store is None:
            raise LookupError("the database is not open")
        return status_page(self._config(), store, datetime.now(UTC))

    async def _metrics(self, scope: Scope, send: Send) -> None:
        body, content_type = metrics.exposition()
        await _respond(send, scope, 200, content_type.encode(), body)


async def _respond(send: Send, scope: Scope, status: int, content_type: bytes, body: bytes) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
    ]
    await _fixed(
        send, scope, {"type": "http.response.start", "status": status, "headers": headers}, body
    )


async def _fixed(send: Send, scope: Scope, start: Message, body: bytes) -> None:
    metrics.count_response(start["status"])
    await send(start)
    if scope["method"] == "HEAD":
        body = b""
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
