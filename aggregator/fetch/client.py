"""``Fetcher``: one conditional GET, redirects followed by hand, answer as a record.

    FetchJob ─▶ per hop: scheme check ─▶ host slot ─▶ GET (validators only to job.url)
             ─▶ 3xx: next hop │ 304: NotModified │ 2xx: body (decoded, capped) ─▶ Fetched
                              │ other: HTTPStatusError subclass

Redirects are followed here, not by urllib3, so that the validators of
``job.url`` never go to another URL and every hop passes the address check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import urllib3.exceptions
from urllib3 import BaseHTTPResponse, PoolManager, Timeout

from aggregator import USER_AGENT, metrics
from aggregator.config import Limits
from aggregator.errors import (
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    TooLarge,
    TooManyRedirects,
)
from aggregator.fetch.body import CHUNK, read_body, size_text
from aggregator.fetch.deadline import Deadline
from aggregator.fetch.guard import (
    AddressPolicy,
    Classifier,
    Resolver,
    check_scheme,
    is_public,
    system_resolve,
)
from aggregator.fetch.hosts import HostLimiter
from aggregator.fetch.translate import seconds, status_error, translate
from aggregator.fetch.transport import guarded_pools
from aggregator.model import Fetched, FetchJob, NotModified

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.9, */*;q=0.8"
)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
#: Headers that describe the encoded transfer, not the decoded body we hand on.
_TRANSFER_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _finish(resp: BaseHTTPResponse, hop: _Hop) -> None:
    """Back to the pool (keep-alive) when the answer was read to its end, else closed.

    A 304 or a body read whole leaves the connection reusable; a redirect's
    body is not read, so its connection is closed.
    """
    if hop.location is None:
        resp.drain_conn()  # nothing left to read
        resp.release_conn()
    else:
        resp.close()
        resp.release_conn()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Hop(NamedTuple):
    status: int
    headers: dict[str, str]  #: lower-case names
    body: bytes | None  #: None for a 304 or a redirect
    location: str | None = None  #: absolute redirect target


class Fetcher:
    """Fetches for many worker threads at once.

    One urllib3 pool manager (thread-safe) per address policy (trusted /
    public-only), made on first use, so a connection checked under the
    lenient policy is never reused under the strict one. ``resolve`` and
    ``classify`` are the address check's seams for tests.
    """

    def __init__(
        self,
        limits: Limits,
        user_agent: str = USER_AGENT,
        *,
        hosts: HostLimiter | None = None,
        resolve: Resolver = system_resolve,
        classify: Classifier = is_public,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.limits = limits
        self.hosts = hosts or HostLimiter(limits.per_host_concurrency)
        self.headers = {
            "User-Agent": user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        }
        self._resolve = resolve
        self._classify = classify
        self._clock = clock
        #: pool managers by ``AddressPolicy.trusted``
        self._pools: dict[bool, PoolManager] = {}
        self._lock = threading.Lock()
        #: deadlines of the fetches running now, and when abort_all() said to end them
        self._running: set[Deadline] = set()
        self._abort_at: float | None = None

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            managers = list(self._pools.values())
        for manager in managers:
            manager.clear()

    def abort_all(self, grace: float = 0.0) -> None:
        """End every fetch, running or still to come, at most ``grace`` seconds from now.

        For a stopping daemon: each such fetch raises ``FetchTimeout`` (its
        sockets are shut, as at its own deadline), so its poll ends normally.
        """
        with self._lock:
            self._abort_at = time.monotonic() + grace
            running = list(self._running)
        for deadline in running:
            deadline.cut(grace)

    def _deadline(self) -> Deadline:
        deadline = Deadline(self.limits.fetch_deadline.total_seconds())
        with self._lock:
            self._running.add(deadline)
            abort_at = self._abort_at
        if abort_at is not None:
            deadline.cut(max(0.0, abort_at - time.monotonic()))
        return deadline

    def _done(self, deadline: Deadline) -> None:
        deadline.stop()
        with self._lock:
            self._running.discard(deadline)

    def _manager(self, policy: AddressPolicy) -> PoolManager:
        manager = self._pools.get(policy.trusted)
        if manager is None:
            with self._lock:
                manager = self._pools.get(policy.trusted)
                if manager is None:
                    manager = guarded_pools(policy, per_host=self.hosts.per_host)
                    self._pools[policy.trusted] = manager
        return manager

    def fetch(self, job: FetchJob) -> Fetched | NotModified:
        """GET ``job.url`` conditionally; raises the most specific ``FetchError``."""
        started = time.monotonic()
        policy = AddressPolicy.for_url(job.configured_url, self._resolve, self._classify)
        manager = self._manager(policy)
        deadline = self._deadline()
        url, hops, permanent = job.url, 0, True
        try:
            while True:
                check_scheme(url)
                host = urlsplit(url).hostname or ""
                with self.hosts.slot(host):
                    deadline.start()
                    conditional = url == job.url and bool(job.etag or job.last_modified)
                    hop = self._hop(manager, job, url, conditional, deadline, host)
                if hop.location is None:
                    return self._record(job, url, hop, started, hops, permanent)
                hops += 1
                if hops > self.limits.max_redirects:
                    raise TooManyRedirects(
                        f"more than {self.limits.max_redirects} redirects (next: {hop.location})"
                    )
                permanent = permanent and hop.status in PERMANENT
                url = hop.location
        finally:
            self._done(deadline)
            metrics.observe_fetch(time.monotonic() - started)

    def _hop(
        self,
        manager: PoolManager,
        job: FetchJob,
        url: str,
        validators: bool,
        deadline: Deadline,
        host: str,
    ) -> _Hop:
        """One request and its answer, body read (or None: 304, or a redirect)."""
        headers = dict(self.headers)
        if validators and job.etag:
            headers["If-None-Match"] = job.etag
        if validators and job.last_modified:
            headers["If-Modified-Since"] = job.last_modified
        connect = min(self.limits.connect_timeout.total_seconds(), max(deadline.remaining(), 0.01))
        read = self.limits.read_timeout.total_seconds()
        try:
            resp = manager.urlopen(
                "GET",
                url,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                timeout=Timeout(connect=connect, read=read),
            )
            try:
                hop = self._answer(resp, url, validators, deadline)
            except BaseException:
                resp.close()
                raise
            _finish(resp, hop)
            return hop
        except FetchError:
            if deadline.expired:
                raise self._timeout(deadline) from None
            raise
        except _TRANSPORT_ERRORS as exc:
            limit_hit = deadline.expired or deadline.remaining() <= 0.05
            if limit_hit and deadline.cut_short:
                raise self._timeout(deadline) from exc
            raise translate(
                exc,
                host=host,
                connect=connect,
                read=read,
                deadline=deadline.seconds,
                expired=limit_hit,
            ) from exc

    def _answer(
        self, resp: BaseHTTPResponse, url: str, validators: bool, deadline: Deadline
    ) -> _Hop:
        status = resp.status
        headers = {k.lower(): v for k, v in resp.headers.itermerged()}
        if status in REDIRECTS and headers.get("location"):
            return _Hop(status, headers, None, urljoin(url, headers["location"].strip()))
        if status == 304:
            if not validators:
                raise HTTPStatusError(304, "HTTP 304 Not Modified to an unconditional request")
            return _Hop(status, headers, None)
        if not 200 <= status < 300:
            raise status_error(status, resp.reason, headers, self._clock())
        encoding = headers.get("content-encoding")
        limit = self.limits.max_body_bytes
        length = headers.get("content-length", "")
        if not encoding and length.isdigit() and int(length) > limit:
            raise TooLarge(f"body over {size_text(limit)} (Content-Length {length})")

        def check() -> None:
            if deadline.expired:
                raise self._timeout(deadline)

        chunks = resp.stream(CHUNK, decode_content=False)
        return _Hop(status, headers, read_body(chunks, encoding, limit, check))

    @staticmethod
    def _timeout(deadline: Deadline) -> FetchError:
        if deadline.cut_short:
            return FetchTimeout("cut short: the daemon is stopping")
        return FetchTimeout(f"timed out after {seconds(deadline.seconds)} (total deadline)")

    def _record(
        self,
        job: FetchJob,
        url: str,
        hop: _Hop,
        started: float,
        hops: int,
        permanent: bool,
    ) -> Fetched | NotModified:
        now = self._clock()
        elapsed = time.monotonic() - started
        headers, body = hop.headers, hop.body
        etag = headers.get("etag")
        last_modified = headers.get("last-modified")
        if body is None:
            return NotModified(
                url=url,
                headers=dict(headers),
                fetched_at=now,
                elapsed=elapsed,
                etag=etag or job.etag,
                last_modified=last_modified or job.last_modified,
            )
        return Fetched(
            url=url,
            status=hop.status,
            body=body,
            headers={k: v for k, v in headers.items() if k not in _TRANSFER_HEADERS},
            fetched_at=now,
            elapsed=elapsed,
            permanent_redirect=url if hops and permanent else None,
            etag=etag,
            last_modified=last_modified,
        )
