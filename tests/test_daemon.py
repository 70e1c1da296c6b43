"""``aggregator run`` as systemd runs it: a real subprocess, a test-owned NOTIFY_SOCKET.

The daemon polls loopback sources at 1-2 s intervals; the test reads the
sd_notify datagrams it sends, counts the requests at the loopback server,
edits config files and sends SIGHUP/SIGTERM, as an admin and systemd would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from aggregator.daemon import FETCH_GRACE_SECONDS
from aggregator.notify import Notifier, watchdog_interval
from tests.loopback import LoopbackServer

WATCHDOG_USEC = 2_000_000


def rss(name: str, items: int = 2) -> bytes:
    entries = "".join(
        f"<item><title>{name} {i}</title><link>http://example.org/{name}/{i}</link>"
        f"<guid>{name}-{i}</guid><pubDate>Wed, 25 May 2022 1{i}:00:00 +0800</pubDate>"
        f"<description>body {i}</description></item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{name}</title><link>http://example.org/</link><description>d</description>"
        f"{entries}</channel></rss>"
    ).encode()


def source(sid: str, url: str, interval: str) -> str:
    return (
        f'[[sources]]\nid = "{sid}"\nurl = "{url}"\n'
        f'categories = ["news"]\ninterval = "{interval}"\n'
    )


class NotifyListener:
    """The AF_UNIX datagram socket systemd would listen on; keeps (time, message) pairs."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agg-notify-")  # short: sun_path holds 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def fields(self, since: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            messages = list(self.messages)
        return [
            (at, dict(line.split("=", 1) for line in text.splitlines() if "=" in line))
            for at, text in messages
            if at >= since
        ]

    def times(self, key: str, value: str | None = None, since: float = 0.0) -> list[float]:
        return [
            at for at, f in self.fields(since) if key in f and (value is None or f[key] == value)
        ]

    def wait_for(
        self, key: str, value: str | None = None, since: float = 0.0, timeout: float = 30.0
    ) -> dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for _, f in self.fields(since):
                if key in f and (value is None or f[key] == value):
                    return f
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value} after {timeout}s; got {self.messages!r}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)
        for name in (self.path,):
            if os.path.exists(name):
                os.unlink(name)
        os.rmdir(self.dir)


class DaemonProcess:
    """``aggregator run`` in a subprocess, its log in a file."""

    def __init__(
        self, config: Path, notify: NotifyListener, python: Sequence[str] = (), **env: str
    ) -> None:
        self.log_path = config.parent / "daemon.log"
        self._log = self.log_path.open("wb")
        environ = {
            k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "WATCHDOG_PID")
        }
        environ.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC), **env)
        self.proc = subprocess.Popen(
            [*(python or (sys.executable, "-m", "aggregator")), "run", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environ,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.log())
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the log:\n{self.log()}")

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def start_daemon(notify: NotifyListener) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(config: Path, python: Sequence[str] = (), **env: str) -> DaemonProcess:
        daemon = DaemonProcess(config, notify, python, **env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


def write_main(folder: Path, sources: str, **extra: str) -> Path:
    settings = "".join(f"{k} = {v}\n" for k, v in extra.items())
    config = folder / "aggregator.toml"
    config.write_text(
        f"""[aggregator]
database = "sqlite:///db/aggregator.db"
output_dir = "public"
include = ["sources.d/*.toml"]
{settings}
[server]
listen = "127.0.0.1:0"

[limits]
jitter = 0

[categories.news]
title = "News"

{sources}""",
        encoding="utf-8",
    )
    (folder / "sources.d").mkdir(exist_ok=True)
    return config


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def request_times(loopback: LoopbackServer, path: str, since: float = 0.0) -> list[float]:
    return [r.at for r in loopback.requests_to(path) if r.at >= since]


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


# --------------------------------------------------------------- the life of a daemon


def test_ready_watchdog_polls_reload_and_stop(
    tmp_path: Path, loopback: LoopbackServer, notify: NotifyListener, start_daemon: Any
) -> None:
    for name in ("a", "b", "c", "d", "e", "e2"):
        loopback.add(f"/{name}.xml", rss(name), headers={"Content-Type": "application/rss+xml"})
    base = loopback.url
    config = write_main(tmp_path, source("a", f"{base}/a.xml", "2s"))
    extra = tmp_path / "sources.d" / "extra.toml"
    extra.write_text(
        source("b", f"{base}/b.xml", "1h")
        + source("c", f"{base}/c.xml", "2s")
        + source("e", f"{base}/e.xml", "1h")
    )
    daemon = start_daemon(config)

    # READY only once the database is migrated and HTTP listens
    ready = notify.wait_for("READY", "1")
    assert ready["STATUS"].startswith("4 sources, 0 failing")
    listen = daemon.wait_log(r"serving \S+ on (http://127\.0\.0\.1:\d+/)", timeout=1).group(1)
    with urllib.request.urlopen(listen + "healthz", timeout=5) as answer:
        assert answer.status == 200
    assert (tmp_path / "db" / "aggregator.db").exists()

    # polls at the interval, and the watchdog every WATCHDOG_USEC / 2
    wait_until(lambda: len(request_times(loopback, "/a.xml")) >= 4, 15, "four polls of a")
    a_times = request_times(loopback, "/a.xml")
    assert all(1.4 <= g <= 2.8 for g in gaps(a_times)), gaps(a_times)
    beats = notify.times("WATCHDOG", "1")
    assert len(beats) >= 4, notify.messages
    assert all(g <= WATCHDOG_USEC / 1e6 for g in gaps(beats)), gaps(beats)
    assert len(loopback.requests_to("/b.xml")) == 1  # 1h interval: polled once, at start
    assert len(loopback.requests_to("/e.xml")) == 1
    poll_line = daemon.wait_log(r"poll source=a status=(ok|unchanged) new=\d+ .*duration=[\d.]+")
    assert poll_line

    # SIGHUP after editing an included file: added, changed and removed sources
    extra.write_text(
        source("b", f"{base}/b.xml", "2s")  # shorter interval: counts from its last poll
        + source("d", f"{base}/d.xml", "2s")  # new
        + source("e", f"{base}/e2.xml", "1h")  # new URL: polled now
    )  # c removed
    last_a = request_times(loopback, "/a.xml")[-1]
    hup = time.monotonic()
    daemon.send(signal.SIGHUP)
    notify.wait_for("RELOADING", "1", since=hup, timeout=10)
    assert "MONOTONIC_USEC" in notify.wait_for("RELOADING", "1", since=hup)
    reloaded = notify.wait_for("READY", "1", since=notify.times("RELOADING", "1", since=hup)[0])
    assert reloaded["STATUS"].startswith("4 sources")
    wait_until(lambda: request_times(loopback, "/d.xml"), 5, "the added source polled")
    wait_until(lambda: request_times(loopback, "/b.xml", since=hup), 5, "b at its new interval")
    wait_until(lambda: request_times(loopback, "/e2.xml"), 5, "e at its new URL")
    time.sleep(4)
    assert not request_times(loopback, "/c.xml", since=hup + 3), "a removed source was polled"
    after = request_times(loopback, "/a.xml", since=hup)
    assert after and after[0] - last_a >= 1.5, "reload re-polled an unchanged source early"
    assert len(request_times(loopback, "/e2.xml")) == 1
    daemon.wait_log(r"reloaded \S+: 4 sources \(\+1, -1\)")

    # SIGHUP with a broken file: keeps the running config, says where the problem is
    broken = tmp_path / "sources.d" / "broken.toml"
    broken.write_text(source("x", "ftp://example.org/feed.xml", "2s"))
    hup = time.monotonic()
    daemon.send(signal.SIGHUP)
    refused = notify.wait_for("READY", "1", since=hup, timeout=10)
    assert "reload refused" in refused["STATUS"]
    line = daemon.wait_log(r"reload refused.*broken\.toml:\d+: sources\[0\]\.url: .*").group(0)
    assert "only http and https" in line
    wait_until(lambda: len(request_times(loopback, "/a.xml", since=hup)) >= 2, 8, "a still polled")
    wait_until(lambda: request_times(loopback, "/d.xml", since=hup), 8, "d still polled")
    checked = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 2
    assert re.search(r"broken\.toml:3: sources\[0\]\.url: only http", checked.stdout), (
        checked.stdout
    )
    checked = subprocess.run(
        [sys.executable, "-m", "aggregator", "check-config", "-c", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 2 and "broken.toml:3: sources[0].url" in checked.stdout

    # the refusal stays in the status line until a reload succeeds
    assert "reload refused" in notify.wait_for("WATCHDOG", "1", since=hup + 1.5)["STATUS"]
    broken.unlink()
    hup = time.monotonic()
    daemon.send(signal.SIGHUP)
    fixed = notify.wait_for("READY", "1", since=hup, timeout=10)
    assert "refused" not in fixed["STATUS"]

    # SIGTERM: STOPPING=1, exit 0
    term = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert daemon.wait(20) == 0, daemon.log()
    assert notify.times("STOPPING", "1", since=term)
    assert "Traceback" not in daemon.log()
    assert "stopped" in daemon.log()


def test_warm_stop_cuts_a_stalled_fetch(
    tmp_path: Path, loopback: LoopbackServer, notify: NotifyListener, start_daemon: Any
) -> None:
    """The first SIGTERM gives in-flight fetches a short deadline, not their full one."""
    config = write_main(tmp_path, source("stuck", f"{loopback.url}/stall", "1h"))
    daemon = start_daemon(config)
    notify.wait_for("READY", "1")
    wait_until(lambda: loopback.requests_to("/stall"), 10, "the stalled fetch begun")
    term = time.monotonic()
    daemon.send(signal.SIGTERM)
    assert daemon.wait(FETCH_GRACE_SECONDS + 10) == 0, daemon.log()
    took = time.monotonic() - term
    assert took < FETCH_GRACE_SECONDS + 5, took  # the read timeout (30 s) never came into it
    assert notify.times("STOPPING", "1", since=term)
    assert "poll source=stuck status=failed" in daemon.log()
    assert "cut short" in daemon.log()


def test_second_signal_is_a_cold_stop(
    tmp_path: Path, loopback: LoopbackServer, notify: NotifyListener, start_daemon: Any
) -> None:
    config = write_main(tmp_path, source("stuck", f"{loopback.url}/stall", "1h"))
    daemon = start_daemon(config)
    notify.wait_for("READY", "1")
    wait_until(lambda: loopback.requests_to("/stall"), 10, "the stalled fetch begun")
    term = time.monotonic()
    daemon.send(signal.SIGTERM)
    time.sleep(0.3)
    daemon.send(signal.SIGINT)
    code = daemon.wait(5)
    assert time.monotonic() - term < 2, daemon.log()
    assert code != 0
    assert "cold stop" in daemon.log()


def test_unusable_listen_address_exits_1(
    tmp_path: Path, notify: NotifyListener, start_daemon: Any
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = write_main(tmp_path, "")
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        daemon = start_daemon(config)
        assert daemon.wait(30) == 1, daemon.log()
    assert not notify.times("READY")
    assert "cannot serve HTTP" in daemon.log()


#: PR_SET_MDWE (Linux 6.3+): what the unit's MemoryDenyWriteExecute=yes does, for this
#: process and what it execs; then runs ``python -m aggregator <args>``
UNDER_MDWE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
os.execv(sys.executable, [sys.executable, "-m", "aggregator", *sys.argv[1:]])
"""


def test_runs_without_writable_executable_memory(
    tmp_path: Path, loopback: LoopbackServer, notify: NotifyListener, start_daemon: Any
) -> None:
    """The unit's MemoryDenyWriteExecute=yes: poll, parse, store, write and serve all work."""
    loopback.add("/a.xml", rss("a"), headers={"Content-Type": "application/rss+xml"})
    config = write_main(tmp_path, source("a", f"{loopback.url}/a.xml", "2s"))
    daemon = start_daemon(config, python=(sys.executable, "-c", UNDER_MDWE))
    end = time.monotonic() + 30
    while not notify.times("READY") and daemon.proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    if daemon.proc.poll() == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    notify.wait_for("READY", "1")
    daemon.wait_log(r"poll source=a status=ok new=2")
    listen = daemon.wait_log(r"serving \S+ on (http://127\.0\.0\.1:\d+/)").group(1)
    wait_until(lambda: "a 1" in (tmp_path / "public" / "news.atom").read_text(), 10, "written")
    request = urllib.request.Request(listen + "news.atom", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
    daemon.send(signal.SIGTERM)
    assert daemon.wait(20) == 0, daemon.log()
    assert "Traceback" not in daemon.log()


# ------------------------------------------------------------------ in-process pieces


def test_notifier_abstract_socket_and_no_socket() -> None:
    name = f"agg-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier("@" + name).send("READY=1", "STATUS=x")
        assert sock.recv(100) == b"READY=1\nSTATUS=x"
    assert not Notifier("").send("READY=1")
    missing = Notifier("/nonexistent/notify")
    assert missing.enabled and not missing.send("READY=1")  # logged, not raised


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    assert watchdog_interval() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None  # meant for another process
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_fetcher_abort_all_cuts_running_and_later_fetches(loopback: LoopbackServer) -> None:
    from aggregator.config import Limits
    from aggregator.errors import FetchTimeout
    from aggregator.fetch import Fetcher
    from aggregator.model import FetchJob

    fetcher = Fetcher(Limits())
    url = f"{loopback.url}/stall"
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            fetcher.fetch(FetchJob("s", url, url))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=fetch)
    worker.start()
    wait_until(lambda: loopback.requests_to("/stall"), 10, "the fetch begun")
    started = time.monotonic()
    fetcher.abort_all(0.5)
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - started < 3
    assert isinstance(errors[0], FetchTimeout) and "cut short" in str(errors[0])
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetcher.fetch(FetchJob("s", url, url))
    assert time.monotonic() - started < 3
    fetcher.close()
