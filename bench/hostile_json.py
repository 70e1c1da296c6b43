"""A JSON source that never closes its JSONP call, measured from outside (issue 13).

    a loopback server answers  cb(  + N spaces + "x"  (no closing parenthesis)
    1. `aggregator poll` of that source alone, then with the large list: wall time
    2. `aggregator run` with the same sources polled every 2 s (a list and
       detail bodies over the inline limit too): /healthz asked every 50 ms for
       --seconds; the slowest answer and how many were asked; the duration
       of each poll of the JSONP source as the daemon logs it

Before the fix the JSONP regex held the GIL for minutes (4,000 spaces: 58 s):
the poll never ended and /healthz stopped answering.

    python3 bench/hostile_json.py                    # 100,000 spaces, 20 s of probes
    python3 bench/hostile_json.py --spaces 4000 --seconds 10

Not a test: it prints figures. Loopback only; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.loopback import LoopbackServer  # noqa: E402


def config(folder: Path, base: str, interval: str) -> Path:
    path = folder / "aggregator.toml"
    path.write_text(
        f"""[aggregator]
database = "sqlite:///aggregator.db"
output_dir = "public"

[server]
listen = "127.0.0.1:0"

[categories.news]
title = "News"

[[sources]]
id = "freeze"
url = "{base}/freeze.js"
categories = ["news"]
interval = "{interval}"
type = "json"
[sources.json]
items = "list"
title = "title"
link = "url"

[[sources]]
id = "small"
url = "{base}/small.js"
categories = ["news"]
interval = "{interval}"
type = "json"
[sources.json]
items = "list"

[[sources]]
id = "biglist"
url = "{base}/big.json"
categories = ["news"]
interval = "{interval}"
type = "json"
[sources.json]
items = "list"
title = "title"
link = "url"
infocode = "code"
[sources.json.detail]
url = "{base}/detail/{{infocode}}"
content = "text"
""",
        encoding="utf-8",
    )
    return path


def poll_once(cfg: Path, *sources: str) -> tuple[float, int, str]:
    started = time.monotonic()
    only = [arg for sid in sources for arg in ("--source", sid)]
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll", "-c", str(cfg), *only],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return time.monotonic() - started, done.returncode, done.stdout


def probe(cfg: Path, seconds: float) -> tuple[int, int, float, list[float]]:
    """(answered, asked, slowest, latencies) of /healthz while the daemon polls."""
    log = cfg.parent / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "-c", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        listen = None
        end = time.monotonic() + 30
        while listen is None and time.monotonic() < end:
            found = re.search(r"serving \S+ on (http://127\.0\.0\.1:\d+/)", log.read_text())
            listen = found.group(1) if found else None
            time.sleep(0.05)
        if listen is None:
            raise SystemExit("the daemon did not start:\n" + log.read_text())
        answered = asked = 0
        latencies: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            asked += 1
            started = time.monotonic()
            try:
                with urllib.request.urlopen(listen + "healthz", timeout=5) as answer:
                    answer.read()
                    answered += answer.status == 200
            except OSError:
                pass
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        return answered, asked, max(latencies), latencies
    finally:
        daemon.terminate()
        daemon.wait(30)
        durations = re.findall(
            r"poll source=freeze status=\w+ .*?duration=([\d.]+)", log.read_text()
        )
        print(f"daemon's polls of the JSONP source: {', '.join(durations)} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    items = [
        {"code": f"NW2022052523916{i:05d}", "title": f"item {i}", "url": f"http://e.org/{i}"}
        for i in range(400)
    ]
    big = json.dumps({"list": items, "pad": "x" * 20_000}).encode()
    with LoopbackServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.add("/freeze.js", b"cb(" + b" " * args.spaces + b"x")
        server.add("/small.js", b"cb(" + b" " * 1000 + b"x")
        server.add("/big.json", big, headers={"Content-Type": "application/json"})
        for item in items:
            body = json.dumps({"text": "<p>" + "body " * 5000 + "</p>"}).encode()
            server.add(f"/detail/{item['code']}", body)
        folder = Path(tmp)
        os.chdir(folder)
        cfg = config(folder, server.url, "2s")
        runs = (
            ("the JSONP source alone", ("freeze",)),
            ("both sources", ()),
            ("a JSONP freeze under the inline limit (1,000 spaces)", ("small",)),
        )
        for what, sources in runs:
            took, code, out = poll_once(cfg, *sources)
            print(f"poll of {what} ({args.spaces:,} spaces): {took:.2f} s, exit {code}")
            print("  " + out.strip().replace("\n", "\n  "))
        (folder / "aggregator.db").unlink()
        answered, asked, slowest, latencies = probe(config(folder, server.url, "2s"), args.seconds)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"/healthz over {args.seconds:g} s of polls every 2 s: {answered}/{asked} answered, "
            f"slowest {slowest * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"median {latencies[len(latencies) // 2] * 1000:.0f} ms; "
            f"freeze polled {len(server.requests_to('/freeze.js'))} times"
        )


if __name__ == "__main__":
    main()
