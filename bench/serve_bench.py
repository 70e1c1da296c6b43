"""Throughput of ``aggregator serve`` next to nginx serving the same files (issue 4).

    write 20 category feeds x 50 entries with the real renderers (+ .gz twins)
    start `python -m aggregator serve` and nginx (bench/serve_nginx.conf.in) on loopback
    wrk, ~10 s each: 200s (no validators), then 304s (If-None-Match of each feed)
    print requests/s and p99 latency side by side, and serve/nginx; stop both

Both are asked with ``Accept-Encoding: gzip``, as feed readers do, so both send
the precompressed twins. Each request rotates over the 20 category feeds (a
wrk Lua script). With two or more CPUs the servers are pinned to CPU 0 and wrk
to CPU 1, so each server has one core, as the daemon does (one process).

    python3 bench/serve_bench.py                      # one round
    python3 bench/serve_bench.py --runs 3             # median of three rounds
    python3 bench/serve_bench.py --nginx-workers auto # nginx with a worker per CPU
    python3 bench/serve_bench.py --floor              # and uvicorn around a bare 304 app

Not a test: it prints figures. Loopback only; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config, load_config  # noqa: E402
from aggregator.model import Category, CategoryInfo, Entry  # noqa: E402
from aggregator.write import (  # noqa: E402
    ALL_FEED,
    feed_meta,
    render_atom,
    render_index,
    render_opml,
    replace_with_gzip,
)

HERE = Path(__file__).resolve().parent
NGINX_TEMPLATE = HERE / "serve_nginx.conf.in"
CST = timezone(timedelta(hours=8))
MAX_AGE = 300
WORDS_ZH = [
    "科技",
    "金融",
    "组团",
    "发展",
    "内江",
    "高新区",
    "产业",
    "集群",
    "创新",
    "企业",
    "研发",
    "政策",
    "资金",
    "园区",
    "市场",
    "数据",
]
WORDS_EN = [
    "market",
    "data",
    "growth",
    "policy",
    "research",
    "industry",
    "cluster",
    "capital",
    "science",
    "report",
]


# ------------------------------------------------------------------ the files


def write_feed_set(root: Path, feeds: int, entries: int, port: int) -> Config:
    """A config in ``root`` and its output_dir filled as write_outputs would fill it."""
    rand = random.Random(4)
    lines = [
        "[aggregator]",
        'database = "sqlite:///var/aggregator.db"',
        'output_dir = "public"',
        f'base_url = "http://127.0.0.1:{port}/"',
        f"entries_per_feed = {entries}",
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        f'cache_max_age = "{MAX_AGE}s"',
    ]
    categories = [
        Category(f"cat{i:02d}", f"分类{i:02d}新闻", f"Category {i}") for i in range(feeds)
    ]
    for c in categories:
        lines += [f"[categories.{c.id}]", f'title = "{c.title}"']
    (root / "aggregator.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(root / "aggregator.toml")
    settings = config.aggregator

    newest = datetime(2022, 5, 25, 16, 53, 43, tzinfo=CST)
    by_id = {c.id: c for c in categories}
    everything: list[Entry] = []
    rows = []
    for n, c in enumerate(categories):
        mine = []
        for k in range(entries):
            code = f"NW2022{n:04d}{k:08d}"
            paragraphs = "".join(
                "<p>"
                + " ".join(rand.choice(WORDS_ZH + WORDS_EN) for _ in range(rand.randint(40, 120)))
                + "</p>"
                for _ in range(rand.randint(2, 5))
            )
            when = newest - timedelta(minutes=7 * k + n)
            mine.append(
                Entry(
                    key=f"ic:{code}",
                    infocode=code,
                    title=" ".join(rand.choice(WORDS_ZH) for _ in range(6)),
                    link=f"https://example.org/a/{code}.html",
                    content_html=paragraphs,
                    content_raw=None,
                    summary_html=None,
                    author=c.title.removesuffix("新闻"),
                    published=when,
                    updated=when,
                    categories=(c.id,),
                )
            )
        everything += mine
        empty = datetime(2000, 1, 1, tzinfo=UTC)
        data = render_atom(feed_meta(c, settings, empty), mine, by_id, settings)
        replace_with_gzip(settings.output_dir / f"{c.id}.atom", data)
        rows.append(CategoryInfo(c.id, c.title, c.description, len(mine), mine[0].updated))
    everything.sort(key=lambda e: e.published, reverse=True)
    all_feed = render_atom(
        feed_meta(None, settings, datetime(2000, 1, 1, tzinfo=UTC)),
        everything[:entries],
        by_id,
        settings,
    )
    replace_with_gzip(settings.output_dir / f"{ALL_FEED}.atom", all_feed)
    replace_with_gzip(settings.output_dir / "index.html", render_index(rows, settings))
    replace_with_gzip(settings.output_dir / "index.opml", render_opml(rows, settings))
    return config


# ---------------------------------------------------------------- the servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def start_serve(config: Config, tmp: Path, cpu: int | None) -> subprocess.Popen[bytes]:
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115  (closed with the process)
    cmd = [sys.executable, "-m", "aggregator", "serve", "-c", str(config.path)]
    proc = subprocess.Popen(pinned(cmd, cpu), stdout=log, stderr=log, cwd=HERE.parent)
    wait_for(config.server.port, proc, "aggregator serve")
    return proc


def floor_server(port: int) -> None:
    """uvicorn, configured as the feed server, around an app that only answers 304.

    What uvicorn itself costs per request: the most any ASGI app under it can reach.
    """
    import uvicorn

    from aggregator.serve.server import bind, uvicorn_config

    start = {
        "type": "http.response.start",
        "status": 304,
        "headers": [
            (b"cache-control", b"max-age=300"),
            (b"vary", b"accept-encoding"),
            (b"etag", b'"0123456789abcdef0123456789abcdef-gz"'),
        ],
    }
    body = {"type": "http.response.body", "body": b"", "more_body": False}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            await send(start)
            await send(body)

    uvicorn.Server(uvicorn_config(app)).run(sockets=[bind("127.0.0.1", port)])


def start_floor(port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--floor-server", str(port)]
    proc = subprocess.Popen(pinned(cmd, cpu), cwd=HERE.parent)
    wait_for(port, proc, "uvicorn floor")
    return proc


def start_nginx(root: Path, tmp: Path, port: int, workers: str, cpu: int | None):  # type: ignore[no-untyped-def]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_TEMPLATE.read_text().format(
            workers=workers,
            user="user root;" if os.geteuid() == 0 else "",
            tmp=tmp,
            port=port,
            root=root,
            max_age=MAX_AGE,
        )
    )
    cmd = [nginx, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")]
    proc = subprocess.Popen(pinned(cmd, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(port, proc, "nginx")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the load


def etags(port: int, paths: list[str]) -> dict[str, str]:
    """Each path's ETag for a gzip-accepting client; checks the server answers 304 to it."""
    got = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in paths:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        r.read()
        if r.status != 200 or r.getheader("Content-Encoding") != "gzip":
            raise SystemExit(f":{port}{path}: {r.status} {r.getheader('Content-Encoding')}")
        got[path] = r.getheader("ETag") or ""
        conn.request("GET", path, headers={"Accept-Encoding": "gzip", "If-None-Match": got[path]})
        r = conn.getresponse()
        r.read()
        if r.status != 304:
            raise SystemExit(f":{port}{path}: If-None-Match gave {r.status}, not 304")
    conn.close()
    return got


def lua_script(tmp: Path, name: str, paths: list[str], tags: dict[str, str] | None) -> Path:
    """A wrk script rotating over ``paths``, with each one's If-None-Match when ``tags``."""
    requests = []
    for path in paths:
        headers = {"Accept-Encoding": "gzip"}
        if tags is not None:
            headers["If-None-Match"] = tags[path]
        fields = ", ".join(f'["{k}"] = {lua_string(v)}' for k, v in headers.items())
        requests.append(f'wrk.format("GET", "{path}", {{{fields}}})')
    script = tmp / f"{name}.lua"
    script.write_text(
        "local requests = {}\n"
        "init = function(args)\n"
        + "".join(f"  requests[{i + 1}] = {r}\n" for i, r in enumerate(requests))
        + "end\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #requests + 1\n"
        "  return requests[i]\n"
        "end\n"
    )
    return script


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Figures:
    rps: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = float("nan")  #: server CPU time per request, microseconds


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (nginx's workers)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, script: Path, seconds: int, connections: int, cpu: int | None) -> Figures:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(
        pinned(cmd, cpu), capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"  wrk :{port} {script.stem}: socket errors: {socket_errors.group(1)}")
    return Figures(rps, p99, total, errors)


def served_304s(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(r'^aggregator_http_responses_total\{status="304"\} ([\d.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


# ---------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration of each run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1, help="rounds; the median is printed")
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--nginx-workers", default="1", help='"1" (one core, like serve) or "auto"')
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk")
    parser.add_argument(
        "--floor", action="store_true", help="also measure uvicorn around an app that only says 304"
    )
    parser.add_argument("--floor-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server(args.floor_server)
        return 0
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"{tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    server_cpu, wrk_cpu = (0, 1) if pin else (None, None)

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as name:
        tmp = Path(name)
        serve_port, nginx_port = free_port(), free_port()
        config = write_feed_set(tmp, args.feeds, args.entries, serve_port)
        out = config.aggregator.output_dir
        sizes = [p.stat().st_size for p in out.glob("cat*.atom")]
        gz_sizes = [p.stat().st_size for p in out.glob("cat*.atom.gz")]
        print(
            f"{len(sizes)} feeds x {args.entries} entries: {statistics.mean(sizes) / 1024:.0f} KiB"
            f" each, {statistics.mean(gz_sizes) / 1024:.0f} KiB gzipped; wrk -t1"
            f" -c{args.connections} -d{args.seconds}s; nginx workers={args.nginx_workers};"
            f" pinned={'yes' if pin else 'no'}; {os.cpu_count()} CPUs"
        )
        paths = [f"/{p.name}" for p in sorted(out.glob("cat*.atom"))]
        nginx_tmp = tmp / "nginx"
        nginx_tmp.mkdir()
        procs = []
        try:
            serve = start_serve(config, tmp, server_cpu)
            procs.append(serve)
            nginx = start_nginx(out, nginx_tmp, nginx_port, args.nginx_workers, server_cpu)
            procs.append(nginx)
            servers = {"serve": (serve_port, serve), "nginx": (nginx_port, nginx)}
            scripts = {}
            for who, (port, _) in servers.items():
                tags = etags(port, paths)
                scripts[(who, 200)] = lua_script(tmp, f"{who}-200", paths, None)
                scripts[(who, 304)] = lua_script(tmp, f"{who}-304", paths, tags)
            if args.floor:
                floor_port = free_port()
                servers["floor"] = (floor_port, start_floor(floor_port, server_cpu))
                procs.append(servers["floor"][1])
                scripts[("floor", 304)] = scripts[("serve", 304)]
            results: dict[tuple[str, int], list[Figures]] = {k: [] for k in scripts}
            for round_ in range(args.runs):
                for status in (200, 304):
                    for who, (port, proc) in servers.items():
                        if (who, status) not in scripts:
                            continue
                        before = served_304s(serve_port) if who == "serve" else 0
                        pid = proc.pid
                        cpu_before = cpu_seconds(pid)
                        figures = run_wrk(
                            port, scripts[(who, status)], args.seconds, args.connections, wrk_cpu
                        )
                        figures.cpu_us = (cpu_seconds(pid) - cpu_before) / figures.requests * 1e6
                        if who == "serve" and status == 304:
                            answered = served_304s(serve_port) - before
                            if answered < figures.requests:
                                print(f"  only {answered:.0f} of {figures.requests} were 304s")
                        if figures.errors:
                            print(f"  {who} {status}: {figures.errors} non-2xx/3xx answers")
                        results[(who, status)].append(figures)
                        print(
                            f"  round {round_ + 1} {who:5} {status}: {figures.rps:10.0f} req/s"
                            f"  p99 {figures.p99_ms:7.2f} ms  {figures.cpu_us:5.0f} us CPU/request"
                        )
        finally:
            for proc in reversed(procs):
                stop(proc)
        if procs and procs[0].returncode != 0:
            print(f"aggregator serve exited with {procs[0].returncode}", file=sys.stderr)

    print()
    print(
        f"{'':6}{'serve req/s':>12}{'p99 ms':>8}{'CPU us':>8}"
        f"{'nginx req/s':>13}{'p99 ms':>8}{'CPU us':>8}{'ratio':>7}{'CPU ratio':>10}"
    )
    for status in (200, 304):
        s = results[("serve", status)]
        n = results[("nginx", status)]
        s_rps = statistics.median(f.rps for f in s)
        n_rps = statistics.median(f.rps for f in n)
        s_cpu = statistics.median(f.cpu_us for f in s)
        n_cpu = statistics.median(f.cpu_us for f in n)
        print(
            f"{status:<6}{s_rps:12.0f}{statistics.median(f.p99_ms for f in s):8.2f}{s_cpu:8.1f}"
            f"{n_rps:13.0f}{statistics.median(f.p99_ms for f in n):8.2f}{n_cpu:8.1f}"
            f"{s_rps / n_rps:7.2f}{n_cpu / s_cpu:10.2f}"
        )
    print(
        "ratio = serve/nginx requests/s; CPU ratio = nginx/serve CPU per request"
        " (the rate ratio on an otherwise idle core)"
    )
    if ("floor", 304) in results:
        f = results[("floor", 304)]
        f_rps = statistics.median(x.rps for x in f)
        f_cpu = statistics.median(x.cpu_us for x in f)
        n_cpu = statistics.median(x.cpu_us for x in results[("nginx", 304)])
        n_rps = statistics.median(x.rps for x in results[("nginx", 304)])
        print(
            f"uvicorn alone, 304 to everything: {f_rps:.0f} req/s, p99"
            f" {statistics.median(x.p99_ms for x in f):.2f} ms, {f_cpu:.1f} us CPU/request"
            f" (ratio {f_rps / n_rps:.2f}, CPU ratio {n_cpu / f_cpu:.2f})"
        )
    if args.runs > 1:
        print(f"(medians of {args.runs} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
