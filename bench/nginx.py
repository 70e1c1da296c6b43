"""Debian's nginx as the loopback web the pollers poll.

Static files from one folder with ``etag on`` (nginx also honours
If-Modified-Since), so a second poll of unchanged files gets ``304``. The
access log holds only ``<status> <method> <uri>`` per request: the runner
reads it to prove a warm run really was all 304s.

    with Nginx(root) as web:
        web.url  # http://127.0.0.1:<free port>/
        mark = web.log_mark(); ...; web.statuses_since(mark)  # Counter({"304": 1000})
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format status '$status $request_method $request_uri';
    access_log {tmp}/access.log status;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    etag on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """One nginx master (plus workers) in its own temp prefix; always stopped on exit."""

    def __init__(self, root: Path, port: int | None = None, workers: int = 1) -> None:
        self.root = Path(root).absolute()
        self.port = port or free_port()
        self.workers = workers
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    def start(self, timeout: float = 10.0) -> Nginx:
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            CONF.format(tmp=self.tmp, root=self.root, port=self.port, workers=self.workers)
        )
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us, and we stop it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout}s")

    def stop(self) -> None:
        """Graceful stop, then a kill of the whole group; removes the temp prefix."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid)
                self.proc.wait(timeout=5)
        if self.proc is not None:
            _killpg(self.proc.pid)  # stray workers, if the master died first
            if self.proc.stderr:
                self.proc.stderr.close()
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_mark(self) -> int:
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def statuses_since(self, mark: int) -> collections.Counter[str]:
        """Response status counts of the requests logged after ``mark``."""
        counts: collections.Counter[str] = collections.Counter()
        try:
            with self.access_log.open("rb") as f:
                f.seek(mark)
                for line in f:
                    counts[line.split(b" ", 1)[0].decode()] += 1
        except FileNotFoundError:
            pass
        return counts

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
