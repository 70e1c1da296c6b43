"""Side by side: ``aggregator poll`` and ``newsboat -x reload`` on the same feeds.

    python3 bench/run.py --feeds 1000 --items 50 --runs 3

Generates the set (bench/genfeeds.py, cached under bench/out/sets/), serves
it with nginx (bench/nginx.py), then for each poller setting and each run:
COLD (fresh database / cache) and WARM (the state of the first cold run polled
again: every feed must answer 304, checked in nginx's access log; newsboat
gets one unmeasured reload first, see ``prime``). Prints medians and the
ratio to newsboat's best setting; writes bench/out/results-<stamp>.{json,md}
and bench/out/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import measure  # noqa: E402
from nginx import Nginx  # noqa: E402

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
REPO = BENCH.parent


@dataclass
class Setting:
    name: str
    kind: str  #: "aggregator", "newsboat" or "curl"
    threads: int


@dataclass
class Sample:
    setting: str
    state: str  #: "cold" or "warm"
    run: int
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_mb: float
    tree_rss_mb: float
    returncode: int
    timed_out: bool
    items: int  #: items in the documents fetched with 200 (0 on an all-304 run)
    stored: int  #: items held afterwards (aggregator: merged items; newsboat: rss_item rows)
    http: dict[str, int]  #: nginx status counts during this run
    note: str = ""
    load: float = 0.0  #: 1-minute load average when the run ended (other work on the box)
    git: str = ""  #: the aggregator's commit when the run started (others commit meanwhile)


@dataclass
class Row:
    setting: str
    state: str
    wall: float
    cpu: float
    maxrss_mb: float
    tree_rss_mb: float
    items_per_s: float | None
    stored: int
    http: str
    ok: bool
    vs_newsboat: float | None = None  #: newsboat's best median wall / this one (>1: faster)
    vs_curl: float | None = None  #: this median wall / curl's in the same state (the fetch floor)
    walls: list[float] = field(default_factory=list)


def aggregator_cmd(extra: str | None) -> list[str]:
    if extra:
        return extra.split()
    return [sys.executable, "-m", "aggregator"]


def compile_package() -> None:
    """Byte-compile the package, as a regular (non-editable) install is.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise
    compile every module from source in every measured run.
    """
    import aggregator

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(aggregator.__file__).parent)],
        check=True,
    )


def prepare_state(
    setting: Setting, state_dir: Path, manifest: genfeeds.Manifest, url: str
) -> list[str]:
    """A fresh state folder for one setting; returns the command that polls once."""
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    if setting.kind == "aggregator":
        cfg = state_dir / "aggregator.toml"
        genfeeds.write_aggregator_config(cfg, manifest, url, workers=setting.threads)
        return [*ARGS_AGG, "poll", "-c", str(cfg)]
    if setting.kind == "curl":
        (state_dir / "headers").mkdir()
        groups = [
            [f"url = {_q(u)}", f"dump-header = {_q(str(state_dir / 'headers' / f'{n}.txt'))}"]
            for n, u in enumerate(feed_urls(manifest, url))
        ]
        return curl_cmd(state_dir / "cold.cfg", groups, setting.threads)
    urls = state_dir / "urls"
    genfeeds.write_newsboat_urls(urls, manifest, url)
    conf = state_dir / "config"
    conf.write_text(
        f"reload-threads {setting.threads}\n"
        "download-timeout 60\n"
        "download-retries 1\n"
        "show-read-feeds yes\n"
        "cleanup-on-quit no\n"
    )
    return [
        "newsboat",
        "-x",
        "reload",
        "-u",
        str(urls),
        "-c",
        str(state_dir / "cache.db"),
        "-C",
        str(conf),
    ]


ARGS_AGG: list[str] = []


def feed_urls(manifest: genfeeds.Manifest, url: str) -> list[str]:
    return [f"{url.rstrip('/')}/{spec.path}" for spec in manifest.specs]


def _q(value: str) -> str:
    """A curl config file string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_cmd(cfg: Path, groups: list[list[str]], connections: int) -> list[str]:
    """One curl process fetching every URL of ``groups`` (one option list per URL),
    ``connections`` transfers at a time over reused connections, bodies discarded."""
    common = ['output = "/dev/null"', "silent", "show-error"]
    cfg.write_text("next\n".join("\n".join([*g, *common]) + "\n" for g in groups))
    return ["curl", "--parallel", "--parallel-max", str(connections), "-K", str(cfg)]


def curl_conditional(
    state_dir: Path, manifest: genfeeds.Manifest, url: str, threads: int
) -> list[str]:
    """curl's warm command: each URL with the ETag / Last-Modified its cold fetch got,
    as If-None-Match / If-Modified-Since (what a conditional poller sends)."""
    groups = []
    for n, u in enumerate(feed_urls(manifest, url)):
        head = (state_dir / "headers" / f"{n}.txt").read_text("latin-1")
        pairs = [ln.split(":", 1) for ln in head.splitlines() if ":" in ln and ln[0] != " "]
        fields = {k.strip().lower(): v.strip() for k, v in pairs}
        group = [f"url = {_q(u)}"]
        if "etag" in fields:
            group.append(f"header = {_q('If-None-Match: ' + fields['etag'])}")
        if "last-modified" in fields:
            group.append(f"header = {_q('If-Modified-Since: ' + fields['last-modified'])}")
        groups.append(group)
    return curl_cmd(state_dir / "warm.cfg", groups, threads)


def stored_items(setting: Setting, state_dir: Path, m: measure.Measured) -> tuple[int, str]:
    """Items the poller holds after the run (aggregator: merged items), and a status note."""
    note = ""
    if setting.kind == "curl":
        return 0, note
    if setting.kind == "aggregator":
        words = [ln.split()[1] for ln in m.stdout.splitlines() if len(ln.split()) > 1]
        note = " ".join(f"{k}={v}" for k, v in sorted(Counter(words).items()))
        db, query = state_dir / "agg.db", "select count(*) from items"
    else:
        db, query = state_dir / "cache.db", "select count(*) from rss_item"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(query).fetchone()[0], note
    except sqlite3.Error as exc:
        return 0, f"{note} ({db.name}: {exc})"


def one(
    setting: Setting,
    state: str,
    run: int,
    cmd: list[str],
    state_dir: Path,
    web: Nginx,
    manifest: genfeeds.Manifest,
    timeout: float,
) -> Sample:
    env = dict(os.environ, HOME=str(state_dir), LC_ALL="C.UTF-8")
    head = git_head() if setting.kind == "aggregator" else ""
    mark = web.log_mark()
    m = measure.run(cmd, cwd=state_dir, env=env, timeout=timeout, log=state_dir / f"{state}-r{run}")
    http = dict(web.statuses_since(mark))
    stored, note = stored_items(setting, state_dir, m)
    items = round(manifest.total_items * http.get("200", 0) / max(1, manifest.feeds))
    s = Sample(
        setting.name,
        state,
        run,
        m.wall,
        m.cpu,
        m.user,
        m.sys,
        m.maxrss_mb,
        m.tree_rss_mb,
        m.returncode,
        m.timed_out,
        items,
        stored,
        http,
        note,
        os.getloadavg()[0],
        head,
    )
    flag = "" if m.returncode == 0 and not m.timed_out else f" rc={m.returncode}"
    if m.timed_out:
        flag += " TIMEOUT"
    if m.returncode != 0 and m.stderr.strip():
        flag += " stderr: " + m.stderr.strip().splitlines()[-1][:200]
    print(
        f"  {setting.name:<14} {state:<4} run {run}: {m.wall:7.2f} s wall {m.cpu:7.2f} s cpu "
        f"{m.maxrss_mb:6.0f} MB  load {s.load:.1f}  http={http} stored={stored} {note}{flag}"
        + (f" git {head}" if head else ""),
        flush=True,
    )
    return s


def prime(cmd: list[str], state_dir: Path, web: Nginx, timeout: float) -> None:
    """One unmeasured newsboat reload between cold and warm.

    newsboat 2.21 loses the ETag / Last-Modified of a feed's first download
    (it UPDATEs rss_feed before the row is INSERTed), so its second reload
    still gets 200s; only from the third on does it send conditional requests.
    """
    env = dict(os.environ, HOME=str(state_dir), LC_ALL="C.UTF-8")
    mark = web.log_mark()
    m = measure.run(cmd, cwd=state_dir, env=env, timeout=timeout)
    print(
        f"  {'(prime)':<14}      {m.wall:7.2f} s wall, http={dict(web.statuses_since(mark))}",
        flush=True,
    )


def summarize(
    samples: list[Sample], settings: list[Setting], manifest: genfeeds.Manifest
) -> list[Row]:
    rows: list[Row] = []
    for st in settings:
        for state in ("cold", "warm"):
            group = [s for s in samples if s.setting == st.name and s.state == state]
            if not group:
                continue
            wall = statistics.median(s.wall for s in group)
            items = statistics.median(s.items for s in group)
            http = Counter()
            for s in group:
                http.update(s.http)
            expected = "200" if state == "cold" else "304"
            ok = all(
                s.returncode == 0
                and not s.timed_out
                and s.http.get(expected, 0) == manifest.feeds
                and sum(s.http.values()) == manifest.feeds
                for s in group
            )
            rows.append(
                Row(
                    setting=st.name,
                    state=state,
                    wall=wall,
                    cpu=statistics.median(s.cpu for s in group),
                    maxrss_mb=statistics.median(s.maxrss_mb for s in group),
                    tree_rss_mb=statistics.median(s.tree_rss_mb for s in group),
                    items_per_s=items / wall if items and wall else None,
                    stored=round(statistics.median(s.stored for s in group)),
                    http=" ".join(f"{k}:{v // len(group)}" for k, v in sorted(http.items())),
                    ok=ok,
                    walls=[round(s.wall, 3) for s in group],
                )
            )
    kinds = {st.name: st.kind for st in settings}
    for state in ("cold", "warm"):
        nb = [r.wall for r in rows if r.state == state and kinds[r.setting] == "newsboat"]
        floor = [r.wall for r in rows if r.state == state and kinds[r.setting] == "curl"]
        for r in rows:
            if r.state == state and kinds[r.setting] != "curl":
                r.vs_newsboat = min(nb) / r.wall if nb and r.wall else None
                r.vs_curl = r.wall / floor[0] if floor and floor[0] else None
    return rows


def markdown(rows: list[Row], meta: dict[str, object]) -> str:
    head = (
        "| poller | state | wall s | CPU s | peak RSS MB | tree RSS MB | items/s | items held "
        "| nginx statuses (per run) | vs newsboat best | x curl | all runs ok |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n"
    )
    body = "".join(
        f"| {r.setting} | {r.state} | {r.wall:.2f} | {r.cpu:.2f} | {r.maxrss_mb:.0f} "
        f"| {r.tree_rss_mb:.0f} | {f'{r.items_per_s:,.0f}' if r.items_per_s else '-'} "
        f"| {r.stored:,} | {r.http} "
        f"| {f'{r.vs_newsboat:.2f}x' if r.vs_newsboat else '-'} "
        f"| {f'{r.vs_curl:.1f}x' if r.vs_curl else '-'} | {'yes' if r.ok else 'NO'} |\n"
        for r in rows
    )
    m = meta
    return (
        f"{m['feeds']} feeds x {m['items']} items ({m['total_items']:,} items, "
        f"{m['unique_items']:,} unique after infoCode merge, {m['bytes'] / 1e6:.0f} MB), "
        f"median of {m['runs']} runs, {m['date']}, {m['machine']}; 1-min load average "
        f"after each run {m['load'][0]:.1f}-{m['load'][1]:.1f}\n\n" + head + body
    )


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, Python {platform.python_version()}"


def git_head() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "aggregator"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--only",
        default="aggregator,newsboat-1,newsboat-8,curl-16",
        help="comma list of settings: aggregator, newsboat-N (reload-threads N), curl-N "
        "(one curl, N parallel connections: the fetch floor)",
    )
    ap.add_argument("--workers", type=int, default=8, help="aggregator [limits] workers")
    ap.add_argument("--aggregator-cmd", help='default: "<this python> -m aggregator"')
    ap.add_argument("--timeout", type=float, default=600, help="seconds per poll run")
    ap.add_argument("--nginx-workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    ARGS_AGG[:] = aggregator_cmd(args.aggregator_cmd)
    compile_package()
    settings = []
    for name in args.only.split(","):
        name = name.strip()
        if name == "aggregator":
            settings.append(Setting(name, "aggregator", args.workers))
        elif name.startswith(("newsboat-", "curl-")):
            kind, threads = name.split("-", 1)
            settings.append(Setting(name, kind, int(threads)))
        else:
            ap.error(f"unknown setting {name!r}")

    args.out.mkdir(parents=True, exist_ok=True)
    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    print(
        f"set: {set_dir} ({manifest.total_items:,} items, {manifest.unique_items:,} unique, "
        f"{manifest.bytes / 1e6:.1f} MB)",
        flush=True,
    )

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    samples: list[Sample] = []
    work = args.out / "work"
    try:
        with Nginx(set_dir / "feeds", workers=args.nginx_workers) as web:
            print(f"nginx: {web.url} (pid {web.proc.pid if web.proc else '?'})", flush=True)
            # Run 1 of each setting: cold in its warm folder, then warm there. Later
            # runs: cold in a scratch folder, warm again in the same warm folder (a
            # poll answered by 304s changes nothing there, so every warm run is alike).
            warm_cmd: dict[str, list[str]] = {}
            for run in range(1, args.runs + 1):
                for st in settings:
                    warm_dir = work / st.name / "warm"
                    cold_dir = warm_dir if run == 1 else work / st.name / "cold"
                    cmd = prepare_state(st, cold_dir, manifest, web.url)
                    samples.append(one(st, "cold", run, cmd, cold_dir, web, manifest, args.timeout))
                    if run == 1:
                        warm_cmd[st.name] = cmd
                        if st.kind == "curl":
                            warm_cmd[st.name] = curl_conditional(
                                warm_dir, manifest, web.url, st.threads
                            )
                        if st.kind == "newsboat":
                            prime(cmd, warm_dir, web, args.timeout)
                    else:
                        shutil.rmtree(cold_dir, ignore_errors=True)
                    samples.append(
                        one(
                            st,
                            "warm",
                            run,
                            warm_cmd[st.name],
                            warm_dir,
                            web,
                            manifest,
                            args.timeout,
                        )
                    )
    except KeyboardInterrupt:
        measure.kill_current()
        print("\ninterrupted; nginx stopped, partial results follow", file=sys.stderr)

    rows = summarize(samples, settings, manifest)
    meta = {
        "feeds": manifest.feeds,
        "items": manifest.items,
        "seed": manifest.seed,
        "total_items": manifest.total_items,
        "unique_items": manifest.unique_items,
        "bytes": manifest.bytes,
        "runs": args.runs,
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %z"),
        "machine": machine(),
        "aggregator": f"{' '.join(ARGS_AGG)} (git {git_head()}), workers={args.workers}",
        "load": [
            min((s.load for s in samples), default=0),
            max((s.load for s in samples), default=0),
        ],
        "newsboat": subprocess.run(
            ["newsboat", "-v"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0],
    }
    md = markdown(rows, meta)
    print("\n" + md)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    doc = {"meta": meta, "rows": [asdict(r) for r in rows], "samples": [asdict(s) for s in samples]}
    for name in (f"results-{stamp}", "latest"):
        (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
        (args.out / f"{name}.md").write_text(md)
    print(f"wrote {args.out / ('results-' + stamp)}.{{json,md}}")
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
