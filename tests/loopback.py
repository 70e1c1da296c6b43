"""A real HTTP server on 127.0.0.1 for tests; like rawdog's, the path says the behaviour.

    /files/<name>                 registered bytes, else /work/shared/fixtures/feeds/<name>
                                  (ETag + Last-Modified, 304 to a matching conditional GET)
    /gzip/<name>, /deflate/<name> the same file, Content-Encoding gzip / deflate (?raw: raw deflate)
    /status/<code>                that status (500, 404, 410, ...)
    /429?retry=<v>, /503?retry=<v> with Retry-After: v (seconds or an HTTP-date)
    /redirect/<code>/<n>/<path>   n hops of <code> (301/302/303/307/308), then /<path>
    /redirect-to?url=<u>&code=<c> one hop to any URL (another host, file:, a private address)
    /slow                         200, then one byte per second, forever
    /stall                        reads the request, never answers
    /reset                        reads the request, resets the connection
    /huge                         11 MiB body (Content-Length given; ?stream: not given)
    /gzipbomb                     gzip of 1 GiB of zeros, generated while sent
    /html                         an HTML page, not a feed
    /empty                        200 with 0 bytes
    /billion-laughs, /quadratic, /xxe   hostile XML (bodies below, for other tests too)

Routes added at run time win over all of the above: ``server.add(path, body,
status=, headers=)`` serves fixed bytes (with validators and 304s), and
``server.add(path, handler)`` calls ``handler(Request) -> Response``. Every
request is recorded (``server.requests``, ``server.requests_to(path)``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: Feed files shared by all tests; CI lays shared/ beside the clone, as here.
FIXTURES = Path(
    os.environ.get(
        "AGGREGATOR_FEED_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds",
    )
)
#: The Last-Modified of static routes unless one is given.
EPOCH_DATE = "Wed, 01 Jan 2020 00:00:00 GMT"

HUGE_SIZE = 11 * 1024 * 1024
GZIP_BOMB_SIZE = 1024 * 1024 * 1024

CONTENT_TYPES = {
    ".xml": "application/xml",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

# --- hostile bodies (also used by parse and poll tests) -----------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n <!ENTITY lol0 "lol">\n'
    + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    + b']>\n<rss version="2.0"><channel><title>laughs</title><link>http://127.0.0.1/</link>\n'
    b"<description>billion laughs</description>\n"
    b"<item><title>&lol9;</title><link>http://127.0.0.1/lol</link>"
    b"<description>&lol9;</description></item>\n</channel></rss>\n"
)

XXE = (
    b'<?xml version="1.0"?>\n'
    b'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<rss version="2.0"><channel><title>xxe</title><link>http://127.0.0.1/</link>\n'
    b"<description>external entity</description>\n"
    b"<item><title>secret &xxe;</title><link>http://127.0.0.1/xxe</link>"
    b"<guid>xxe-1</guid><description>&xxe;</description></item>\n</channel></rss>\n"
)

HTML_PAGE = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Not a feed</title>\n'
    b'<link rel="alternate" type="application/rss+xml" href="/files/feed.xml"></head>\n'
    b"<body><h1>Welcome</h1><p>This is a web page, not a feed.</p></body></html>\n"
)


@cache
def quadratic_blowup(entity_size: int = 100_000, references: int = 50_000) -> bytes:
    """One 100 KB entity referenced 50,000 times: ~244 KiB that expands to ~5 GB."""
    refs = b"&a;" * references
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "' + b"x" * entity_size + b'">]>\n'
        b'<rss version="2.0"><channel><title>quadratic</title><link>http://127.0.0.1/</link>\n'
        b"<description>quadratic blowup</description>\n"
        b"<item><title>blowup</title><link>http://127.0.0.1/q</link><description>"
        + refs
        + b"</description></item>\n</channel></rss>\n"
    )


def gzip_bomb(total: int = GZIP_BOMB_SIZE, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """gzip of ``total`` zero bytes (~1 MiB compressed per GiB), made as it is sent."""
    comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(chunk)
    for _ in range(total // chunk):
        out = comp.compress(zeros)
        if out:
            yield out
    yield comp.flush()


def huge_body(size: int = HUGE_SIZE, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """``size`` bytes of an RSS document that never ends (a comment that runs on)."""
    head = b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>huge</title><!-- '
    yield head
    sent = len(head)
    while sent < size:
        n = min(chunk, size - sent)
        yield b"x" * n
        sent += n


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str  #: without the query
    query: dict[str, str]
    target: str  #: the raw request target, query included
    headers: dict[str, str]  #: lower-case names
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)


@dataclass
class Response:
    """What a handler answers; ``body`` may be an iterable streamed without a length."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def not_modified(request: Request, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if etag is None:
            return False
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    ims = request.headers.get("if-modified-since")
    if ims and last_modified:
        try:
            return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


def static(
    body: bytes,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    etag: str | bool = True,
    last_modified: str | bool = True,
) -> Handler:
    """A handler for fixed bytes that honours conditional GET (``etag=False`` turns that off)."""
    tag = f'"{hashlib.sha1(body).hexdigest()[:16]}"' if etag is True else etag or None
    date = EPOCH_DATE if last_modified is True else last_modified or None
    base = {"Content-Type": "application/xml"}
    if tag:
        base["ETag"] = tag
    if date:
        base["Last-Modified"] = date
    base.update(headers or {})

    def handle(request: Request) -> Response:
        if status == 200 and not_modified(request, tag, date):
            kept = {k: v for k, v in base.items() if k.lower() in ("etag", "last-modified")}
            return Response(304, b"", kept)
        return Response(status, body, dict(base))

    return handle


# --- the server ----------------------------------------------------------------------------


class LoopbackServer:
    """Start with ``start()`` (or as a context manager); ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, files_dir: Path = FIXTURES) -> None:
        self.files_dir = files_dir
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._files: dict[str, bytes] = {}
        self._requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # life

    def start(self) -> LoopbackServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __str__(self) -> str:
        return self.url

    def url_for(self, path: str) -> str:
        return self.url + ("" if path.startswith("/") else "/") + path

    # routes

    def add(
        self,
        path: str,
        body: bytes | str | Handler,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        etag: str | bool = True,
        last_modified: str | bool = True,
    ) -> str:
        """Serve ``body`` (bytes, text, or a handler) at ``path``; returns its full URL.

        A path with ``?`` matches that exact target; otherwise the query is ignored.
        """
        if callable(body):
            handler = body
        else:
            data = body.encode() if isinstance(body, str) else body
            handler = static(
                data, status=status, headers=headers, etag=etag, last_modified=last_modified
            )
        with self._lock:
            self._routes[path] = handler
        return self.url_for(path)

    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``/files/<name>`` (and under /gzip/, /deflate/); returns its URL."""
        with self._lock:
            self._files[name] = data
        return self.url_for(f"/files/{name}")

    def file(self, name: str) -> bytes:
        with self._lock:
            if name in self._files:
                return self._files[name]
        if "/" in name or "\\" in name or name.startswith("."):
            raise FileNotFoundError(name)
        return (self.files_dir / name).read_bytes()

    # records

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Request]:
        """Requests whose path (without query) is ``path``."""
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        """Forget added routes, added files and recorded requests."""
        with self._lock:
            self._routes.clear()
            self._files.clear()
            self._requests.clear()

    # dispatch

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _route(self, request: Request) -> Handler | None:
        with self._lock:
            return self._routes.get(request.target) or self._routes.get(request.path)

    def respond(self, request: Request) -> Response | str:
        """The answer to ``request``; a string names a socket-level behaviour."""
        handler = self._route(request)
        if handler is not None:
            return handler(request)
        parts = request.path.strip("/").split("/")
        head, rest = parts[0], "/".join(parts[1:])
        q = request.query
        if head in ("stall", "reset"):
            return head
        if head == "files" and rest:
            return self._file(request, rest, None)
        if head in ("gzip", "deflate") and rest:
            return self._file(request, rest, head)
        if head == "status" and rest.isdigit():
            return _plain(int(rest))
        if head in ("429", "503"):
            extra = {"Retry-After": q["retry"]} if "retry" in q else {}
            return _plain(int(head), extra)
        if head == "redirect" and len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            return self._redirect(request, int(parts[1]), int(parts[2]), "/".join(parts[3:]))
        if head == "redirect-to" and "url" in q:
            return Response(int(q.get("code", "302")), b"", {"Location": q["url"]})
        if head == "slow":
            return Response(200, self._trickle(), {"Content-Type": "application/rss+xml"})
        if head == "huge":
            headers = {"Content-Type": "application/rss+xml"}
            if "stream" not in q:  # /huge?stream: no Content-Length, so only reading finds out
                headers["Content-Length"] = str(HUGE_SIZE)
            return Response(200, huge_body(), headers)
        if head == "gzipbomb":
            headers = {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
            return Response(200, gzip_bomb(), headers)
        bodies = {
            "html": (HTML_PAGE, "text/html; charset=utf-8"),
            "empty": (b"", "application/rss+xml"),
            "billion-laughs": (BILLION_LAUGHS, "application/rss+xml"),
            "quadratic": (quadratic_blowup(), "application/rss+xml"),
            "xxe": (XXE, "application/rss+xml"),
        }
        if head in bodies and not rest:
            body, ctype = bodies[head]
            return Response(200, body, {"Content-Type": ctype})
        return _plain(404)

    def _file(self, request: Request, name: str, encoding: str | None) -> Response:
        try:
            data = self.file(name)
        except OSError:
            return _plain(404)
        ctype = CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        response = static(data, headers={"Content-Type": ctype})(request)
        if encoding and response.status == 200:
            if encoding == "gzip":
                response.body = gzip.compress(data, mtime=0)
            elif "raw" in request.query:
                comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
                response.body = comp.compress(data) + comp.flush()
            else:
                response.body = zlib.compress(data, 9)
            response.headers["Content-Encoding"] = encoding
        return response

    def _redirect(self, request: Request, code: int, hops: int, target: str) -> Response:
        nxt = f"/redirect/{code}/{hops - 1}/{target}" if hops > 1 else f"/{target}"
        query = urlsplit(request.target).query
        location = self.url + nxt + (f"?{query}" if query else "")
        return Response(code, f"moved to {location}\n".encode(), {"Location": location})

    def _trickle(self) -> Iterator[bytes]:
        yield b'<?xml version="1.0"?>\n'
        while not self.stopping.wait(1.0):
            yield b" "


def _plain(status: int, headers: Mapping[str, str] | None = None) -> Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    body = f"{status} {phrase}\n".encode()
    return Response(status, body, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


def closed_port() -> int:
    """A loopback port nobody listens on (connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # idle keep-alive connections end on their own

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this, Nagle plus the
            # client's delayed ACK adds 40 ms to every response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            # Clients here abort on purpose (deadlines, size caps): not worth a traceback.
            with contextlib.suppress(ConnectionError, TimeoutError):
                super().handle()

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                target=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            server._record(request)
            try:
                answer = server.respond(request)
            except Exception as exc:  # a broken test handler: say so over HTTP
                answer = Response(500, f"handler failed: {exc!r}\n".encode())
            if answer == "stall":
                self._stall()
            elif answer == "reset":
                self._reset()
            else:
                assert isinstance(answer, Response)
                self._send(answer)

        def _send(self, response: Response) -> None:
            body = response.body
            streamed = not isinstance(body, bytes | bytearray)
            self.send_response(response.status)
            names = {k.lower() for k in response.headers}
            for name, value in response.headers.items():
                self.send_header(name, value)
            if streamed:
                self.send_header("Connection", "close")
                self.close_connection = True
            elif "content-length" not in names and response.status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))  # type: ignore[arg-type]
            self.end_headers()
            if self.command == "HEAD" or response.status in (204, 304):
                return
            try:
                chunks = body if streamed else [body]
                for chunk in chunks:  # type: ignore[union-attr]
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _stall(self) -> None:
            """Hold the connection open, silent, until the client leaves or the server stops."""
            sock = self.connection
            give_up = time.monotonic() + 300
            while not server.stopping.is_set() and time.monotonic() < give_up:
                readable, _, _ = select.select([sock], [], [], 0.2)
                if readable:
                    try:
                        if not sock.recv(1024):
                            break
                    except OSError:
                        break
            self.close_connection = True

        def _reset(self) -> None:
            """Close with linger 0: the client gets a TCP RST, not an orderly FIN."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

    return Handler


def dump(requests: Iterable[Request]) -> str:
    """The recorded requests as JSON, for assertion messages."""
    return json.dumps(
        [{"method": r.method, "target": r.target, "headers": r.headers} for r in requests],
        indent=1,
    )
