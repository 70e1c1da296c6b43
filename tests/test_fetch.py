"""The fetch stage against the real loopback server (tests/loopback.py).

Limits are shrunk (1-2 s) so the timeout cases stay fast; assertions are on
the exception raised, timings only loosely.
"""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from aggregator import USER_AGENT
from aggregator.config import Limits
from aggregator.errors import (
    ClientError,
    ConnectError,
    FetchError,
    FetchTimeout,
    Gone,
    HTTPStatusError,
    RateLimited,
    ServerError,
    TLSError,
    TooLarge,
    TooManyRedirects,
)
from aggregator.fetch import Fetcher
from aggregator.model import Fetched, FetchJob, NotModified
from tests.loopback import (
    EPOCH_DATE,
    FIXTURES,
    LoopbackServer,
    Request,
    Response,
    closed_port,
)

FEED = "zh__utf8__bbc-chinese-2013.atom"
LIMITS = Limits(
    connect_timeout=timedelta(seconds=2),
    read_timeout=timedelta(seconds=2),
    fetch_deadline=timedelta(seconds=5),
)
MB = 1024 * 1024


@pytest.fixture
def fetcher():
    with Fetcher(LIMITS) as f:
        yield f


def job(url: str, etag: str | None = None, last_modified: str | None = None) -> FetchJob:
    return FetchJob("src", url, url, etag=etag, last_modified=last_modified)


# --- a plain GET --------------------------------------------------------------------------


def test_get_returns_body_headers_and_validators(fetcher, loopback):
    url = loopback.url_for(f"/files/{FEED}")
    got = fetcher.fetch(job(url))
    assert isinstance(got, Fetched)
    assert got.status == 200
    assert got.url == url
    assert got.body == (FIXTURES / FEED).read_bytes()
    assert got.etag and got.etag.startswith('"')
    assert got.last_modified == EPOCH_DATE
    assert got.headers["content-type"] == "application/atom+xml"
    assert all(name == name.lower() for name in got.headers)
    assert got.permanent_redirect is None
    assert got.fetched_at.tzinfo is not None
    assert got.elapsed >= 0


def test_request_headers(fetcher, loopback):
    fetcher.fetch(job(loopback.url_for(f"/files/{FEED}")))
    (seen,) = loopback.requests
    assert seen.headers["user-agent"] == USER_AGENT
    assert seen.headers["accept-encoding"] == "gzip, deflate"
    assert "application/rss+xml" in seen.headers["accept"]
    assert "application/atom+xml" in seen.headers["accept"]
    assert "application/feed+json" in seen.headers["accept"]
    assert "if-none-match" not in seen.headers
    assert "if-modified-since" not in seen.headers
    assert "cookie" not in seen.headers


def test_custom_user_agent(loopback):
    with Fetcher(LIMITS, "probe/1.0") as f:
        f.fetch(job(loopback.url_for(f"/files/{FEED}")))
    assert loopback.requests[0].headers["user-agent"] == "probe/1.0"


# --- conditional GET ----------------------------------------------------------------------


def test_second_request_is_conditional_and_answered_304(fetcher, loopback):
    url = loopback.add("/feed.xml", b"<rss/>", etag='"v1"', last_modified=EPOCH_DATE)
    first = fetcher.fetch(job(url))
    assert isinstance(first, Fetched)
    second = fetcher.fetch(job(url, first.etag, first.last_modified))
    assert isinstance(second, NotModified)
    assert (second.url, second.etag, second.last_modified) == (url, '"v1"', EPOCH_DATE)
    sent = loopback.requests_to("/feed.xml")[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == EPOCH_DATE


def test_third_request_carries_validators_refreshed_by_the_304(fetcher, loopback):
    """A 304 may send new validators (RFC 9110 §15.4.5); the next request uses them."""

    def handler(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(
                304, b"", {"ETag": '"v2"', "Last-Modified": "Thu, 02 Jan 2020 00:00:00 GMT"}
            )
        if request.headers.get("if-none-match") == '"v2"':
            return Response(304, b"")  # no validators this time: keep the ones sent
        return Response(200, b"<rss/>", {"ETag": '"v1"', "Last-Modified": EPOCH_DATE})

    url = loopback.add("/refresh.xml", handler)
    first = fetcher.fetch(job(url))
    second = fetcher.fetch(job(url, first.etag, first.last_modified))
    assert isinstance(second, NotModified)
    assert second.etag == '"v2"'
    assert second.last_modified == "Thu, 02 Jan 2020 00:00:00 GMT"
    third = fetcher.fetch(job(url, second.etag, second.last_modified))
    assert isinstance(third, NotModified)
    assert (third.etag, third.last_modified) == ('"v2"', "Thu, 02 Jan 2020 00:00:00 GMT")
    headers = [r.headers for r in loopback.requests_to("/refresh.xml")]
    assert "if-none-match" not in headers[0]
    assert headers[1]["if-none-match"] == '"v1"'
    assert headers[1]["if-modified-since"] == EPOCH_DATE
    assert headers[2]["if-none-match"] == '"v2"'
    assert headers[2]["if-modified-since"] == "Thu, 02 Jan 2020 00:00:00 GMT"


def test_only_the_known_validator_is_sent(fetcher, loopback):
    url = loopback.add("/lm.xml", b"<rss/>", etag=False, last_modified=EPOCH_DATE)
    got = fetcher.fetch(job(url, None, EPOCH_DATE))
    assert isinstance(got, NotModified)
    sent = loopback.requests[0].headers
    assert "if-none-match" not in sent
    assert sent["if-modified-since"] == EPOCH_DATE


def test_validators_are_not_sent_to_a_redirect_target(fetcher, loopback):
    loopback.add("/target.xml", b"<rss/>", etag='"t"')
    url = loopback.url_for("/redirect/302/1/target.xml")
    got = fetcher.fetch(job(url, '"t"', EPOCH_DATE))
    assert isinstance(got, Fetched)  # the target never saw the validators, so it answers 200
    first, second = loopback.requests
    assert first.headers["if-none-match"] == '"t"'
    assert second.path == "/target.xml"
    assert "if-none-match" not in second.headers
    assert "if-modified-since" not in second.headers


def test_304_to_an_unconditional_request_is_an_error(fetcher, loopback):
    url = loopback.add("/odd", lambda r: Response(304, b""))
    with pytest.raises(HTTPStatusError) as info:
        fetcher.fetch(job(url))
    assert info.value.status == 304


# --- content encodings --------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"/gzip/{FEED}", f"/deflate/{FEED}", f"/deflate/{FEED}?raw"])
def test_compressed_bodies_are_decoded(fetcher, loopback, path):
    got = fetcher.fetch(job(loopback.url_for(path)))
    assert isinstance(got, Fetched)
    assert got.body == (FIXTURES / FEED).read_bytes()
    assert "content-encoding" not in got.headers  # the record describes the decoded body
    assert "content-length" not in got.headers


def test_multi_member_gzip(fetcher, loopback):
    body = gzip.compress(b"<rss>", mtime=0) + gzip.compress(b"</rss>", mtime=0)
    url = loopback.add("/members", body, headers={"Content-Encoding": "gzip"})
    assert fetcher.fetch(job(url)).body == b"<rss></rss>"


def test_corrupt_gzip_is_a_fetch_error(fetcher, loopback):
    url = loopback.add("/bad-gzip", b"this is not gzip", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="corrupt gzip body"):
        fetcher.fetch(job(url))


def test_empty_body(fetcher, loopback):
    got = fetcher.fetch(job(loopback.url_for("/empty")))
    assert isinstance(got, Fetched)
    assert got.body == b""


# --- HTTP errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/status/500", ServerError, "HTTP 500 Internal Server Error"),
        ("/status/502", ServerError, "HTTP 502 Bad Gateway"),
        ("/status/404", ClientError, "HTTP 404 Not Found"),
        ("/status/403", ClientError, "HTTP 403 Forbidden"),
        ("/status/410", Gone, "HTTP 410 Gone"),
        ("/429", RateLimited, "HTTP 429 Too Many Requests"),
        ("/503", ServerError, "HTTP 503 Service Unavailable"),
    ],
)
def test_status_errors(fetcher, loopback, path, error, message):
    with pytest.raises(error) as info:
        fetcher.fetch(job(loopback.url_for(path)))
    assert type(info.value) is error
    assert str(info.value) == message
    assert info.value.status == int(message.split()[1])
    assert info.value.retry_after is None


def test_429_retry_after_seconds(fetcher, loopback):
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as info:
        fetcher.fetch(job(loopback.url_for("/429?retry=120")))
    assert info.value.kind == "429"
    assert info.value.retry_after is not None
    wait = info.value.retry_after - before
    assert timedelta(seconds=119) <= wait <= timedelta(seconds=125)


def test_503_retry_after_http_date(fetcher, loopback):
    with pytest.raises(ServerError) as info:
        fetcher.fetch(job(loopback.url_for("/503?retry=Wed, 21 Oct 2037 07:28:00 GMT")))
    assert info.value.retry_after == datetime(2037, 10, 21, 7, 28, tzinfo=UTC)


def test_html_page_is_fetched_as_is(fetcher, loopback):
    """Whether it is a feed is the parser's call (NotAFeed), not the fetcher's."""
    got = fetcher.fetch(job(loopback.url_for("/html")))
    assert isinstance(got, Fetched)
    assert got.headers["content-type"].startswith("text/html")


# --- transport errors ---------------------------------------------------------------------


def test_connection_refused(fetcher):
    with pytest.raises(ConnectError, match="connection refused"):
        fetcher.fetch(job(f"http://127.0.0.1:{closed_port()}/feed"))


def test_connection_reset(fetcher, loopback):
    with pytest.raises(ConnectError, match="reset"):
        fetcher.fetch(job(loopback.url_for("/reset")))


def test_tls_handshake_failure(fetcher, loopback):
    """https:// to a plain-HTTP port: the handshake fails."""
    with pytest.raises(TLSError) as info:
        fetcher.fetch(job(f"https://127.0.0.1:{loopback.port}/files/{FEED}"))
    assert info.value.kind == "tls"


def test_stall_hits_the_read_timeout(loopback):
    limits = LIMITS.model_copy(update={"read_timeout": timedelta(seconds=0.5)})
    with Fetcher(limits) as f, pytest.raises(FetchTimeout, match=r"after 0.5s \(read\)"):
        f.fetch(job(loopback.url_for("/stall")))


def test_trickle_hits_the_total_deadline(loopback):
    """One byte a second never trips the read timeout; the deadline stops it."""
    limits = LIMITS.model_copy(
        update={"read_timeout": timedelta(seconds=5), "fetch_deadline": timedelta(seconds=1.5)}
    )
    started = time.monotonic()
    with Fetcher(limits) as f, pytest.raises(FetchTimeout) as info:
        f.fetch(job(loopback.url_for("/slow")))
    assert str(info.value) == "timed out after 1.5s (total deadline)"
    assert time.monotonic() - started < 4


def test_deadline_covers_waiting_for_the_headers(loopback):
    """The deadline also cuts the wait for the status line, not only the body."""
    limits = LIMITS.model_copy(
        update={"read_timeout": timedelta(seconds=10), "fetch_deadline": timedelta(seconds=1)}
    )
    with Fetcher(limits) as f, pytest.raises(FetchTimeout, match="total deadline"):
        f.fetch(job(loopback.url_for("/stall")))


def test_connect_timeout_is_translated():
    """A connect timeout cannot be staged on loopback; check the translation on its own."""
    import urllib3.exceptions

    from aggregator.fetch.translate import translate

    cause = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    exc = urllib3.exceptions.MaxRetryError(None, "/", cause)
    error = translate(exc, host="h", connect=10, read=30, deadline=60, expired=False)
    assert type(error) is FetchTimeout
    assert str(error) == "timed out after 10s (connect)"


# --- size cap -----------------------------------------------------------------------------


def _peak_while(call) -> tuple[BaseException, int]:
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge) as info:
            call()
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("path", ["/huge", "/huge?stream"])
def test_huge_body_is_too_large(fetcher, loopback, path):
    error, peak = _peak_while(lambda: fetcher.fetch(job(loopback.url_for(path))))
    assert "10 MiB" in str(error)
    assert peak < 30 * MB


def test_gzip_bomb_stops_at_the_cap_with_bounded_memory(fetcher, loopback):
    """1 GiB of zeros, gzip-encoded: decoding stops at the 10 MiB cap, memory near the cap."""
    error, peak = _peak_while(lambda: fetcher.fetch(job(loopback.url_for("/gzipbomb"))))
    assert "after decompression" in str(error)
    assert peak < 30 * MB, f"peak {peak / MB:.1f} MB"


def test_small_cap(loopback):
    limits = LIMITS.model_copy(update={"max_body_bytes": 4096})
    url = loopback.add("/five-k", b"x" * 5000, headers={"Content-Encoding": "identity"})
    with Fetcher(limits) as f, pytest.raises(TooLarge, match="4 KiB"):
        f.fetch(job(url))
    ok = loopback.add("/four-k", b"x" * 4096)
    with Fetcher(limits) as f:
        assert len(f.fetch(job(ok)).body) == 4096


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "permanent"),
    [
        ("/redirect/301/3/", True),
        ("/redirect/308/2/", True),
        ("/redirect/301/1/redirect/308/1/", True),
        ("/redirect/302/1/", False),
        ("/redirect/303/1/", False),
        ("/redirect/307/2/", False),
        ("/redirect/301/2/redirect/302/1/", False),
        ("/redirect/302/1/redirect/301/1/", False),
    ],
)
def test_redirect_chains(fetcher, loopback, chain, permanent):
    target = loopback.url_for(f"/files/{FEED}")
    got = fetcher.fetch(job(loopback.url_for(chain + f"files/{FEED}")))
    assert isinstance(got, Fetched)
    assert got.url == target
    assert got.permanent_redirect == (target if permanent else None)


def test_relative_location(fetcher, loopback):
    loopback.add("/moved", lambda r: Response(301, b"", {"Location": f"files/{FEED}"}))
    got = fetcher.fetch(job(loopback.url_for("/moved")))
    assert got.url == loopback.url_for(f"/files/{FEED}")


def test_redirect_limit(fetcher, loopback):
    at_limit = loopback.url_for(f"/redirect/302/5/files/{FEED}")
    assert isinstance(fetcher.fetch(job(at_limit)), Fetched)
    with pytest.raises(TooManyRedirects, match="more than 5 redirects"):
        fetcher.fetch(job(loopback.url_for(f"/redirect/302/6/files/{FEED}")))


def test_redirect_loop(fetcher, loopback):
    loopback.add("/loop", lambda r: Response(302, b"", {"Location": "/loop"}))
    with pytest.raises(TooManyRedirects):
        fetcher.fetch(job(loopback.url_for("/loop")))
    assert len(loopback.requests) == LIMITS.max_redirects + 1


# --- per-host politeness ------------------------------------------------------------------


def test_per_host_concurrency(loopback):
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def handler(request: Request) -> Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return Response(200, b"<rss/>", {})

    url = loopback.add("/busy", handler)
    limits = LIMITS.model_copy(update={"per_host_concurrency": 2})
    with Fetcher(limits) as f:
        threads = [threading.Thread(target=f.fetch, args=(job(url),)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert f.hosts.busy() == {}
    assert len(loopback.requests_to("/busy")) == 6
    assert state["max"] == 2


def test_fetcher_works_from_many_threads(loopback):
    results: list[object] = []
    with Fetcher(LIMITS) as f:

        def work() -> None:
            results.append(f.fetch(job(loopback.url_for(f"/gzip/{FEED}"))).body)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [(FIXTURES / FEED).read_bytes()] * 8


def test_server_fixture_is_isolated(loopback_server: LoopbackServer, loopback):
    assert loopback is loopback_server
    assert loopback.requests == []
