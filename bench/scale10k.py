"""10,000 sources on one instance (issue 19): cold and warm polls, then the daemon.

    python3 bench/scale10k.py poll   [--feeds 10000 --items 20] [--state DIR]
    python3 bench/scale10k.py daemon [--window 360] [--state DIR]

``poll``: generates the set (bench/genfeeds.py, cached in bench/out/sets/),
serves it with nginx (bench/nginx.py, two workers), and measures one cold
``aggregator poll`` (fresh SQLite file) then one warm poll of the state it
left (every feed must answer 304, counted in nginx's access log): wall, CPU
(user+sys of the process and every child it waited for), peak RSS of the
process (``ru_maxrss``) and of its tree (the parse children too, sampled).
The state folder is kept for ``daemon``.

``daemon``: on the state a ``poll`` left, spreads the sources' due times
evenly over their 15-minute interval (as a long-running instance has them;
a cold start's polls bunch up instead), starts ``aggregator run`` as a
subprocess and, once the sources due before it started are polled, reads the
CPU of its process tree from /proc/<pid>/stat at the start and the end of a
window of ``--window`` seconds: the share of one core it uses. Then it checks
in the database that every source due in the window was polled, and by how
much after its due time (lag). ``--change F`` gives a fraction F of the
feeds one new item first (stored, and the feeds of its categories written
again, as news arrives); ``--touch F`` rewrites a fraction F of the files
with the same bytes, so they answer 200 (fetched, parsed, nothing stored)
instead of 304. nginx serves the state's own copy of the set (hard links;
a changed file is a new file), so the cached set stays as generated.

Results go to bench/out/scale10k-<phase>.md (and stdout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import measure  # noqa: E402
from nginx import Nginx, free_port  # noqa: E402

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
TICKS = os.sysconf("SC_CLK_TCK")
INTERVAL = 900  #: seconds: every bench source's interval (genfeeds writes "15m")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=("poll", "daemon"))
    ap.add_argument("--feeds", type=int, default=10000)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--state", type=Path, default=None, help="default bench/out/scale-<N>x<M>")
    ap.add_argument("--window", type=float, default=360.0, help="daemon: seconds measured")
    ap.add_argument("--touch", type=float, default=0.0, help="daemon: share of feeds made 200")
    ap.add_argument("--change", type=float, default=0.0, help="daemon: share given a new item")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    set_dir = OUT / "sets" / f"{args.feeds}x{args.items}-s1"
    state = args.state or OUT / f"scale-{args.feeds}x{args.items}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items)
    if args.phase == "poll":
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        subprocess.run(["cp", "-al", str(set_dir / "feeds"), str(state / "www")], check=True)
    for folder in (OUT, state, state / "www"):
        folder.chmod(0o755)  # nginx's workers run as another user
    compile_package()
    # one port for the poll and the daemon phases: a source whose URL changed would
    # forget its validators, and every daemon poll would be a full download
    port_file = state / "nginx.port"
    port = int(port_file.read_text()) if args.phase == "daemon" and port_file.exists() else None
    with Nginx(state / "www", port=port, workers=2) as web:
        if args.phase == "poll":
            text = poll_phase(args, manifest, web, state)
        else:
            text = daemon_phase(args, manifest, web, state)
    OUT.mkdir(exist_ok=True)
    (OUT / f"scale10k-{args.phase}.md").write_text(text)
    print(text)


def compile_package() -> None:
    """Byte-compile as an install does (this machine sets PYTHONDONTWRITEBYTECODE)."""
    import aggregator

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(aggregator.__file__).parent)],
        check=True,
    )


def write_config(state: Path, manifest: genfeeds.Manifest, url: str, workers: int) -> Path:
    config = state / "aggregator.toml"
    genfeeds.write_aggregator_config(config, manifest, url, workers=workers)
    text = config.read_text()
    # the daemon's HTTP server on a free port (8080 may be anyone's on a shared machine)
    text = text.replace("[limits]", f'[server]\nlisten = "127.0.0.1:{free_port()}"\n\n[limits]')
    config.write_text(text)
    return config


def header(args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    git = subprocess.run(
        ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{args.feeds:,} feeds x {args.items} items, SQLite, workers {args.workers}, "
        f"{os.cpu_count()} cores, {now}, code {git}\n"
    )


def poll_phase(
    args: argparse.Namespace, manifest: genfeeds.Manifest, web: Nginx, state: Path
) -> str:
    config = write_config(state, manifest, web.url, args.workers)
    (state / "nginx.port").write_text(f"{web.port}\n")
    cmd = [sys.executable, "-m", "aggregator", "poll", "-c", str(config)]
    rows = []
    for name in ("cold", "warm"):
        mark = web.log_mark()
        load0 = os.getloadavg()[0]
        got = measure.run(cmd, cwd=state, timeout=args.timeout, log=state / f"poll-{name}")
        statuses = dict(web.statuses_since(mark))
        rows.append((name, got, statuses, load0, os.getloadavg()[0]))
        if got.returncode != 0:
            print(f"{name}: exit {got.returncode}\n{got.stderr[-3000:]}", file=sys.stderr)
    items = _count(state / "agg.db", "SELECT count(*) FROM items")
    lines = [
        header(args),
        "| pass | wall s | CPU s | peak RSS MB (process) | tree RSS MB (with parse children) "
        "| nginx statuses | load before / after | exit |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name, got, statuses, load0, load1 in rows:
        lines.append(
            f"| {name} | {got.wall:.1f} | {got.cpu:.1f} | {got.maxrss_mb:.0f} | "
            f"{got.tree_rss_mb:.0f} | {statuses} | {load0:.1f} / {load1:.1f} | "
            f"{got.returncode} |"
        )
    lines.append(f"\nitems stored: {items:,}; set: {manifest.total_items:,} items in the feeds\n")
    return "\n".join(lines) + "\n"


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def tree_cpu(root: int) -> tuple[float, int]:
    """CPU seconds (user+sys, live processes and the children they reaped) of ``root``'s
    process tree, and how many processes it has."""
    tree = measure.tree_stats(root)
    # utime, stime, cutime, cstime (fields 14-17 of stat; 11-14 after the name)
    ticks = sum(sum(int(x) for x in fields[11:15]) for fields in tree.values())
    return ticks / TICKS, len(tree)


def spread_due(db: Path, start: dt.datetime) -> None:
    """Due times evenly over one interval from ``start``, in source order, leases cleared."""
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM sources ORDER BY id")]
        step = INTERVAL / len(ids)
        conn.executemany(
            "UPDATE sources SET next_due_at = ?, lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ?",
            [(_db_time(start + dt.timedelta(seconds=i * step)), sid) for i, sid in enumerate(ids)],
        )


def _db_time(t: dt.datetime) -> str:
    # the store's SQLite datetimes: naive UTC, ISO with a space
    return t.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _parse_time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def daemon_phase(
    args: argparse.Namespace, manifest: genfeeds.Manifest, web: Nginx, state: Path
) -> str:
    db = state / "agg.db"
    if not db.exists():
        sys.exit(f"no state in {state}: run the poll phase first")
    config = write_config(state, manifest, web.url, args.workers)
    touched = _every(manifest, args.touch, offset=0)
    changed = _every(manifest, args.change, offset=1)
    stamp = int(time.time())
    for spec in touched:
        path = web.root / spec.path
        _replace(path, path.read_bytes())  # new Last-Modified and ETag, same bytes
    for spec in changed:
        path = web.root / spec.path
        _replace(path, with_new_item(path.read_text("utf-8"), spec, stamp).encode())
    # nothing due while the daemon starts; once it is ready, due times from then on
    spread_due(db, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    log_path = state / "daemon.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    mark = web.log_mark()
    launched = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", "-c", str(config)],
        cwd=state,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while b"running as" not in log_path.read_bytes():
            if proc.poll() is not None:
                sys.exit(f"daemon exited with {proc.returncode}; see {log_path}")
            time.sleep(0.5)
        startup = time.monotonic() - launched
        start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        spread_due(db, start)
        before = {
            r[0]: (_parse_time(r[1]), _parse_time(r[2]))
            for r in sqlite3.connect(db).execute(
                "SELECT id, next_due_at, last_poll_at FROM sources"
            )
        }
        while dt.datetime.now(dt.UTC) < start:
            time.sleep(0.2)
        t0, (c0, _) = time.monotonic(), tree_cpu(proc.pid)
        w0 = dt.datetime.now(dt.UTC)
        samples = []
        peak_rss = 0
        while time.monotonic() - t0 < args.window:
            time.sleep(10)
            if proc.poll() is not None:
                sys.exit(f"daemon exited with {proc.returncode}; see {log_path}")
            c, n = tree_cpu(proc.pid)
            samples.append((time.monotonic() - t0, c - c0, n))
            peak_rss = max(peak_rss, measure._tree_rss_kb(proc.pid))
        t1, (c1, procs) = time.monotonic(), tree_cpu(proc.pid)
        w1 = dt.datetime.now(dt.UTC)
        load = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    statuses = dict(web.statuses_since(mark))
    after = dict(
        (r[0], _parse_time(r[1]))
        for r in sqlite3.connect(db).execute("SELECT id, last_poll_at FROM sources")
    )
    # due in the window (with a minute's slack at its end): polled once, how late
    lags, missed = [], []
    for sid, (due, last) in before.items():
        if due is None or not (w0 <= due <= w1 - dt.timedelta(seconds=60)):
            continue
        polled = after.get(sid)
        if polled is None or polled == last:
            missed.append(sid)
        else:
            lags.append((polled - due).total_seconds())
    share = (c1 - c0) / (t1 - t0)
    lags.sort()

    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")

    lines = [
        header(args),
        f"daemon `aggregator run`, {args.feeds:,} sources at 15 min, due times spread over "
        f"the interval; {len(changed):,} feeds with a new item, {len(touched):,} answering 200 "
        "with the same items, the rest 304",
        "",
        f"- start-up (launch to 'running as' in its log): {startup:.1f} s",
        f"- window: {t1 - t0:.0f} s ({w0:%H:%M:%S}-{w1:%H:%M:%S} UTC), "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at its end",
        f"- CPU of the daemon's process tree ({procs} processes): {c1 - c0:.1f} s = "
        f"**{share:.1%} of one core**",
        f"- peak RSS of the tree (sampled every 10 s): {peak_rss / 1024:.0f} MB",
        f"- nginx answers from start to stop: {statuses}",
        f"- sources due in the window (less its last minute): {len(lags) + len(missed):,}; "
        f"polled {len(lags):,}, missed {len(missed):,}",
        f"- lag after the due time, s: median {q(0.5):.2f}, p99 {q(0.99):.2f}, "
        f"max {lags[-1] if lags else float('nan'):.2f}",
        "- CPU share per minute of the window: " + ", ".join(_per_minute(samples)),
    ]
    return "\n".join(lines) + "\n"


def _every(manifest: genfeeds.Manifest, share: float, offset: int) -> list[genfeeds.FeedSpec]:
    """Every ``1/share``-th feed (from ``offset``): spread over the due times."""
    if share <= 0:
        return []
    return manifest.specs[offset :: max(1, round(1 / share))]


def _replace(path: Path, data: bytes) -> None:
    """A new file (new inode: the hard-linked set is left alone), new mtime."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def with_new_item(text: str, spec: genfeeds.FeedSpec, stamp: int) -> str:
    """The feed with a copy of its first item on top, under a new title, id and link."""
    tag = "item" if spec.kind == "rss" else "entry"
    start = text.index(f"<{tag}>")
    end = text.index(f"</{tag}>", start) + len(f"</{tag}>")
    item = text[start:end]
    new = f"{spec.id}-new-{stamp}"
    link = f"{genfeeds.LINK_HOST}/new/{new}.html"
    item = re.sub(r"<title>[^<]*</title>", f"<title>New story {new}</title>", item, count=1)
    if spec.kind == "rss":
        item = re.sub(r"<link>[^<]*</link>", f"<link>{link}</link>", item, count=1)
        item = re.sub(r"<guid([^>]*)>[^<]*</guid>", rf"<guid\1>{new}</guid>", item, count=1)
    else:
        item = re.sub(r"<id>[^<]*</id>", f"<id>tag:bench.invalid,2022:{new}</id>", item, count=1)
        item = re.sub(r'href="[^"]*"', f'href="{link}"', item, count=1)
    return text[:start] + item + "\n" + text[start:]


def _per_minute(samples: list[tuple[float, float, int]]) -> list[str]:
    out, last_t, last_c = [], 0.0, 0.0
    for t, c, _ in samples:
        if t - last_t >= 59:
            out.append(f"{(c - last_c) / (t - last_t):.1%}")
            last_t, last_c = t, c
    return out


if __name__ == "__main__":
    main()
