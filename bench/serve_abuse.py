"""A reader's wait while 1,100 clients hold half-sent requests (issue 13, server under abuse).

    write the test site (tests/test_serve.make_site) and start `python -m aggregator serve`
      with the file limit of a service (RLIMIT_NOFILE 1,024, as systemd's default)
    time --gets plain GETs of a feed on an idle server (each a new connection)
    open --half-sent connections that each send half a request head and stop
    time the same GETs again, the first one right after the flood
    print min / median / max of both, and how many half-sent connections are still open

    python3 bench/serve_abuse.py
    python3 bench/serve_abuse.py --half-sent 3000 --gets 50

Not a test: it prints figures. Loopback only; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from tests.test_serve import make_site  # noqa: E402
from tests.test_serve_abuse import (  # noqa: E402
    SERVICE_FILES,
    _enough_files_here,
    _open_half_sent,
    _service_limit,
    _wait_all_closed,
)
from tests.test_serve_process import free_port, wait_until_up  # noqa: E402


def timed_gets(url: str, count: int) -> list[float]:
    took = []
    for _ in range(count):
        start = time.perf_counter()
        answer = requests.get(url, timeout=30, headers={"Connection": "close"})
        took.append(time.perf_counter() - start)
        answer.raise_for_status()
    return took


def show(label: str, took: list[float]) -> None:
    ms = [t * 1000 for t in took]
    print(
        f"{label:<28} first {ms[0]:7.1f} ms  min {min(ms):6.1f}  "
        f"median {statistics.median(ms):6.1f}  max {max(ms):7.1f} ms  ({len(ms)} GETs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-sent", type=int, default=1100)
    parser.add_argument("--gets", type=int, default=20)
    args = parser.parse_args()
    _enough_files_here(args.half_sent + 256)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        site = make_site(Path(tmp), listen=f"127.0.0.1:{port}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "serve", "-c", str(site.config.path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_service_limit,
        )
        base = f"http://127.0.0.1:{port}/"
        try:
            wait_until_up(proc, base)
            print(f"server file limit {SERVICE_FILES}; {args.half_sent} half-sent connections")
            show("idle server", timed_gets(base + "kejiribao.atom", args.gets))
            socks = _open_half_sent(port, args.half_sent)
            show("under the half-sent flood", timed_gets(base + "kejiribao.atom", args.gets))
            still = _wait_all_closed(socks, within=0.5)
            print(f"half-sent still open right after: {len(still)} (the rest pushed out)")
            for sock in socks:
                sock.close()
        finally:
            proc.terminate()
            proc.wait(20)
    print(f"(this process's file limit: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
