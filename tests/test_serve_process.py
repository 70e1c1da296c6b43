"""``aggregator serve`` as a real process: it answers, and SIGTERM/SIGINT stop it with 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from aggregator.store import Store
from tests.test_serve import SEED_TITLE, make_site


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(proc: subprocess.Popen[bytes], url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def start_serve(config_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "serve", "-c", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_process_answers_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    port = free_port()
    site = make_site(tmp_path, listen=f"127.0.0.1:{port}")
    Store.open(site.config.aggregator.database).close()  # the schema, as a poll leaves it
    base = f"http://127.0.0.1:{port}/"
    proc = start_serve(site.config.path)
    try:
        wait_until_up(proc, base)
        feed = requests.get(base + "kejiribao.atom", timeout=5)
        assert feed.status_code == 200
        assert feed.headers["Content-Encoding"] == "gzip"  # requests asks for it
        assert SEED_TITLE in feed.text
        again = requests.get(
            base + "kejiribao.atom", headers={"If-None-Match": feed.headers["ETag"]}, timeout=5
        )
        assert again.status_code == 304
        # serve reads the configured SQLite store (read-only) for /healthz
        health = requests.get(base + "healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert json.loads(health.text)["database"] == "ok"
        assert requests.get(base + "metrics", timeout=5).status_code == 200
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(base, timeout=2)


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        site = make_site(tmp_path, listen=f"127.0.0.1:{port}")
        proc = start_serve(site.config.path)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert b"cannot listen" in stderr


def test_serve_without_a_database_still_serves_files(tmp_path: Path) -> None:
    port = free_port()
    site = make_site(tmp_path, listen=f"127.0.0.1:{port}")
    config = site.config.path.read_text()
    config = config.replace(
        'database = "sqlite:///var/aggregator.db"',
        'database = "postgresql+psycopg://postgres@127.0.0.1:1/x"',
    )
    site.config.path.write_text(config)
    base = f"http://127.0.0.1:{port}/"
    proc = start_serve(site.config.path)
    try:
        wait_until_up(proc, base)
        assert requests.get(base + "all.atom", timeout=5).status_code == 200
        assert requests.get(base + "healthz", timeout=10).status_code == 503
        proc.terminate()
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_serve_creates_no_database_and_says_why_health_fails(tmp_path: Path) -> None:
    """A read-only command: no database file appears; /healthz says what to run."""
    port = free_port()
    site = make_site(tmp_path, listen=f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}/"
    proc = start_serve(site.config.path)
    try:
        wait_until_up(proc, base)
        assert requests.get(base + "all.atom", timeout=5).status_code == 200
        health = requests.get(base + "healthz", timeout=10)
        assert health.status_code == 503
        assert "aggregator poll or run makes it" in json.loads(health.text)["error"]
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in stderr and b"aggregator poll or run makes it" in stderr
    assert not (tmp_path / "var").exists()
