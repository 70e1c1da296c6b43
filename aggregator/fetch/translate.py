"""Lower-level errors and HTTP statuses -> the most specific ``FetchError`` (httpx-style).

urllib3 wraps ``socket``/``ssl``; the real cause (a
``gaierror``, a refused connect) sits somewhere down the chain, so we walk
``__cause__``/``__context__``/``reason``/``args`` to find it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Mapping
from datetime import datetime
from http import HTTPStatus
from http.client import RemoteDisconnected

import urllib3.exceptions as u3

from aggregator.errors import (
    ClientError,
    ConnectError,
    DNSError,
    FetchError,
    FetchTimeout,
    Gone,
    HTTPStatusError,
    RateLimited,
    ServerError,
    TLSError,
)
from aggregator.schedule import parse_retry_after


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def seconds(value: float) -> str:
    """``60s``, ``2.5s``: a limit as people write it."""
    return f"{round(value, 1):g}s"


def _is(exc: BaseException, cls: type[BaseException]) -> bool:
    return isinstance(exc, cls)


def translate(
    exc: BaseException, *, host: str, connect: float, read: float, deadline: float, expired: bool
) -> FetchError:
    """The ``FetchError`` for a transport failure; ``expired`` says the total deadline passed."""
    chain = list(causes(exc))
    if expired:
        return FetchTimeout(f"timed out after {seconds(deadline)} (total deadline)")
    if any(isinstance(e, socket.gaierror | u3.NameResolutionError) for e in chain):
        return DNSError(f"cannot resolve host {host}")
    # urllib3's NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError.
    if any(_is(e, u3.ConnectTimeoutError) and not _is(e, u3.NewConnectionError) for e in chain):
        return FetchTimeout(f"timed out after {seconds(connect)} (connect)")
    if any(isinstance(e, u3.ReadTimeoutError | TimeoutError) for e in chain):
        return FetchTimeout(f"timed out after {seconds(read)} (read)")
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return TLSError(f"TLS certificate rejected: {e.verify_message or e.reason}")
    for e in chain:
        if isinstance(e, ssl.SSLError | u3.SSLError):
            return TLSError(f"TLS error: {_short(e)}")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ConnectError(f"connection refused by {host}")
    if any(isinstance(e, RemoteDisconnected) for e in chain):
        return ConnectError(f"connection closed by {host} without an answer")
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return ConnectError(f"connection reset by {host}")
    if any(isinstance(e, u3.NewConnectionError) for e in chain):
        return ConnectError(f"cannot connect to {host}: {_short(exc)}")
    if isinstance(exc, u3.ProtocolError | u3.MaxRetryError | OSError):
        return ConnectError(f"connection to {host} broken: {_short(exc)}")
    return FetchError(f"{type(exc).__name__}: {_short(exc)}")


def status_error(
    status: int, reason: str | None, headers: Mapping[str, str], now: datetime
) -> FetchError:
    """The error for a non-2xx, non-304 answer; 429 and 503 carry Retry-After."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason or ""
    message = f"HTTP {status} {phrase}".rstrip()
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status == 410:
        return Gone(status, message)
    if status == 429:
        return RateLimited(status, message, retry_after=retry_after)
    if 400 <= status < 500:
        return ClientError(status, message)
    if 500 <= status < 600:
        return ServerError(status, message, retry_after=retry_after)
    return HTTPStatusError(status, message)


def _short(exc: BaseException, limit: int = 200) -> str:
    """The innermost useful message, without urllib3's object reprs."""
    text = str(exc) or type(exc).__name__
    for e in causes(exc):
        if isinstance(e, OSError) and e.strerror:
            text = e.strerror
    return text[:limit]
