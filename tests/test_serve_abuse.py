"""``aggregator serve`` under abuse: half-sent requests never lock a reader out.

The server runs with the file limit a service gets (1,024); 1,100 clients each
send half a request and then nothing. A whole request still gets its feed, and
every half-sent connection is closed (pushed out for room, or after
``request_timeout``).
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from aggregator.serve.guard import connection_limit
from tests.test_serve import SEED_TITLE, make_site
from tests.test_serve_process import free_port, wait_until_up

SERVICE_FILES = 1024
HALF_SENT = 1100
HALF_REQUEST = b"GET /kejiribao.atom HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


def _service_limit() -> None:
    """In the server's child: the file limit systemd gives a service by default."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVICE_FILES, SERVICE_FILES))


def _enough_files_here(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def _open_half_sent(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))  # in the backlog until the server accepts it
        socks.append(sock)
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_WRITE)
    pending = set(socks)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sel.unregister(sock)
            pending.discard(sock)
            with contextlib.suppress(OSError):  # already pushed out: fine, it is closed
                sock.send(HALF_REQUEST)
    sel.close()
    return socks


def _wait_all_closed(socks: list[socket.socket], within: float) -> list[socket.socket]:
    """The sockets still open after ``within`` seconds (each closed one reads EOF or a reset)."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    still = set(socks)
    deadline = time.monotonic() + within
    while still and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                still.discard(sock)
    sel.close()
    return list(still)


def test_connection_limit_follows_the_file_limit() -> None:
    assert connection_limit(1024) == 512
    assert connection_limit(8192) == 4096
    assert connection_limit(100_000) == 4096
    assert connection_limit(64) == 16


def test_half_sent_requests_leave_room_for_a_reader(tmp_path: Path) -> None:
    _enough_files_here(HALF_SENT + 256)
    port = free_port()
    site = make_site(tmp_path, listen=f"127.0.0.1:{port}")
    config = site.config.path
    config.write_text(
        config.read_text().replace("[server]\n", '[server]\nrequest_timeout = "3s"\n'),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_service_limit,
    )
    base = f"http://127.0.0.1:{port}/"
    socks: list[socket.socket] = []
    try:
        wait_until_up(proc, base)
        socks = _open_half_sent(port, HALF_SENT)
        answer = requests.get(base + "kejiribao.atom", timeout=30)
        assert answer.status_code == 200
        assert SEED_TITLE in answer.text
        # every half-sent one is closed: pushed out for room, or at its request deadline
        assert _wait_all_closed(socks, within=60) == []
        # and the server still answers afterwards
        assert requests.get(base + "kejiribao.atom", timeout=10).status_code == 200
        assert proc.poll() is None
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert b"Traceback" not in stderr, stderr.decode()
