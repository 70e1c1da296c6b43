"""uvicorn around the app: a thread with its own event loop, started and stopped by its owner.

``aggregator run`` owns the signals, so uvicorn never installs any (it runs
off the main thread, where it does not try); ``aggregator serve`` runs the
same thread and waits for SIGTERM/SIGINT in the main thread itself.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.serve.app import FeedApp
from aggregator.serve.health import ConfigProvider, HealthProvider, StoreProvider

if TYPE_CHECKING:
    from aggregator.store import Store

log = logging.getLogger("aggregator.serve")

STARTUP_TIMEOUT = 10.0
#: open keep-alive connections get this long to finish their answer on stop
GRACEFUL_SECONDS = 3


class ServerHandle:
    """A running server: where it listens, and ``stop()``."""

    def __init__(
        self, app: FeedApp, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket
    ):
        self.app = app
        self._server = server
        self._thread = thread
        self._sock = sock
        address = sock.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let answers in flight finish, join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(2.0)
        self._sock.close()
        self.app.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a busy port fails in the caller, not in a thread."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("", "::"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _http_protocol(request_timeout: float) -> Any:
    """The guarded httptools protocol; uvicorn's own where its internals moved.

    serve/guard.py extends a uvicorn internal (pinned in pyproject.toml); a uvicorn
    without it still serves, unguarded, and says so rather than failing to start.
    """
    try:
        from aggregator.serve.guard import connection_limit, guarded_protocol
    except (ImportError, AttributeError) as exc:
        log.warning(
            "serve: this uvicorn lacks the httptools protocol the connection guard "
            "extends (%s); serving without the connection bound and request deadline",
            exc,
        )
        return "httptools"
    return guarded_protocol(connection_limit(), request_timeout)


def uvicorn_config(app: Any, request_timeout: float = 10.0) -> uvicorn.Config:
    """How the feed server runs uvicorn (bench/serve_bench.py measures a bare app with it).

    Connections are bounded by the file limit and each request must arrive whole
    within ``request_timeout`` (serve/guard.py says why uvicorn's own settings do not).
    """
    return uvicorn.Config(
        app,
        loop="auto",  # uvloop where installed
        http=_http_protocol(request_timeout),
        ws="none",
        lifespan="off",
        log_config=None,  # leave the process's logging alone
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )


def start_server(
    config: Config,
    store_provider: StoreProvider,
    health_provider: HealthProvider,
    *,
    config_provider: ConfigProvider | None = None,
) -> ServerHandle:
    """Serve ``config.server.listen`` from a background thread; raises OSError if it cannot bind.

    ``config_provider`` (default: always ``config``) gives /healthz the sources
    of the running config after a reload.
    """
    app = FeedApp(config_provider or (lambda: config), store_provider, health_provider)
    sock = bind(config.server.host, config.server.port)
    server = uvicorn.Server(uvicorn_config(app, config.server.request_timeout.total_seconds()))
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            app.close()
            raise OSError(f"the HTTP server did not start on {config.server.listen}")
        time.sleep(0.01)
    handle = ServerHandle(app, server, thread, sock)
    log.info("serving %s on %s", config.aggregator.output_dir, handle.url)
    return handle


class LazyStore:
    """``aggregator serve``'s own store: opened at the first /healthz, kept, retried on failure.

    Read-only: serve never creates, migrates or writes the database; while its
    schema is not this version's, /healthz answers 503 saying so.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Store:
        with self._lock:
            if self._store is None:
                from aggregator.store import Store

                self._store = Store.open_readonly(self.url)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def serve_forever(config: Config) -> int:
    """``aggregator serve``: HTTP only, until SIGTERM/SIGINT.

    0 on a clean stop, 1 when it cannot listen.
    """
    stop = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        log.info("%s: stopping", signal.Signals(signum).name)
        stop = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    store = LazyStore(config.aggregator.database)
    try:
        store()
    except StoreError as exc:  # the files are served all the same; /healthz says why it is 503
        log.warning("%s", exc)
    try:
        try:
            handle = start_server(config, store, lambda: True)
        except OSError as exc:
            log.error("cannot listen on %s: %s", config.server.listen, exc)
            return 1
        # What is loaded now lives as long as the process: keep it out of the collector's
        # scans, which the allocations of every request would otherwise set off.
        gc.freeze()
        while not stop:
            time.sleep(0.2)
        handle.stop()
        store.close()
        log.info("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
