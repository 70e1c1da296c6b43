"""Start-up, side by side: an all-304 ``aggregator poll`` against rss2email's pass.

    python3 bench/startup.py --feeds 100 --runs 9

Serves the generated set (bench/genfeeds.py, 100 feeds x 20 items) with nginx
(bench/nginx.py), primes both pollers with a cold pass (every feed 200) and
one warm pass, then measures warm passes only, alternating the two pollers
(ABBA order, so a drift in the machine's load hits both alike). Every
measured pass must be answered by exactly one 304 per feed (nginx's access
log), else the run is marked not ok.

- aggregator: ``<python> -m aggregator poll -c aggregator.toml`` (SQLite,
  the package byte-compiled as an install is; see run.py).
- rss2email 3.14 (``r2e run --no-send``: fetch, keep ETag/Last-Modified and
  the seen entries, send no mail), from its own venv in bench/out/r2e-venv:
  made with ``pip install rss2email`` on first use (``--r2e PATH`` to use
  another ``r2e``). It is a bench peer, not a project dependency.

Prints medians (wall, CPU = user+sys of the child from wait4), the ratio
rss2email / aggregator, and where aggregator's start-up goes: one extra
pass under ``python -X importtime``, summed by top-level package (self
time, so each module counts once). Writes bench/out/startup-latest.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import measure  # noqa: E402
from nginx import Nginx  # noqa: E402
from run import compile_package, git_head, machine  # noqa: E402

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
R2E_VENV = OUT / "r2e-venv"
TARGET = 0.5  #: seconds, issue 19


def ensure_r2e(explicit: str | None) -> str:
    """The ``r2e`` to run: ``--r2e``, else the bench venv's (made on first use)."""
    if explicit:
        return explicit
    r2e = R2E_VENV / "bin" / "r2e"
    if not r2e.exists():
        print(f"making {R2E_VENV} with rss2email (first use)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(R2E_VENV)], check=True)
        subprocess.run([str(R2E_VENV / "bin" / "pip"), "install", "-q", "rss2email"], check=True)
    return str(r2e)


def opml(manifest: genfeeds.Manifest, base_url: str) -> str:
    outlines = "".join(
        f'<outline type="rss" text="{s.id}" xmlUrl="{base_url.rstrip("/")}/{s.path}"/>\n'
        for s in manifest.specs
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head><title>bench'
        f"</title></head><body>\n{outlines}</body></opml>\n"
    )


class Poller:
    def __init__(self, name: str, folder: Path, cmd: list[str]) -> None:
        self.name, self.folder, self.cmd = name, folder, cmd

    def env(self) -> dict[str, str]:
        return dict(os.environ, HOME=str(self.folder), LC_ALL="C.UTF-8")


def aggregator_poller(folder: Path, manifest: genfeeds.Manifest, url: str, python: str) -> Poller:
    genfeeds.write_aggregator_config(folder / "aggregator.toml", manifest, url)
    cmd = [python, "-m", "aggregator", "poll", "-c", "aggregator.toml"]
    return Poller("aggregator", folder, cmd)


def r2e_poller(folder: Path, manifest: genfeeds.Manifest, url: str, r2e: str) -> Poller:
    base = [r2e, "-c", str(folder / "r2e.cfg"), "-d", str(folder / "r2e.json")]
    env = dict(os.environ, HOME=str(folder))
    (folder / "feeds.opml").write_text(opml(manifest, url), encoding="utf-8")
    for args in (["new", "bench@example.invalid"], ["opmlimport", str(folder / "feeds.opml")]):
        subprocess.run([*base, *args], check=True, env=env, capture_output=True)
    return Poller("rss2email", folder, [*base, "run", "--no-send"])


def one_pass(p: Poller, web: Nginx, timeout: float) -> tuple[measure.Measured, Counter[str]]:
    mark = web.log_mark()
    m = measure.run(p.cmd, cwd=p.folder, env=p.env(), timeout=timeout)
    return m, web.statuses_since(mark)


def import_profile(p: Poller, web: Nginx, top: int = 12) -> list[tuple[str, float]]:
    """Self import time (ms) by top-level package of one warm pass under -X importtime."""
    cmd = [p.cmd[0], "-X", "importtime", *p.cmd[1:]]
    m = measure.run(cmd, cwd=p.folder, env=p.env(), timeout=120, log=p.folder / "importtime")
    per: dict[str, float] = {}
    for line in m.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _, name = (part.strip() for part in line.replace(":", "|", 1).split("|"))
        pkg = name.split(".")[0]
        per[pkg] = per.get(pkg, 0.0) + int(self_us) / 1000
    total = sum(per.values())
    return [("(all imports)", total), *sorted(per.items(), key=lambda kv: -kv[1])[:top]]


def instructions(p: Poller, web: Nginx) -> tuple[int, Counter[str]]:
    """Instructions one pass executes (valgrind's callgrind): steady under load, unlike time."""
    mark = web.log_mark()
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *p.cmd]
    m = measure.run(cmd, cwd=p.folder, env=p.env(), timeout=900, log=p.folder / "callgrind")
    found = re.search(r"Collected : (\d+)", m.stderr)
    return (int(found.group(1)) if found else 0), web.statuses_since(mark)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--runs", type=int, default=9, help="measured warm passes per poller")
    ap.add_argument("--r2e", help="an r2e to run (default: bench/out/r2e-venv, made if missing)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for aggregator")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--instructions", action="store_true", help="also count each one's instructions (valgrind)"
    )
    args = ap.parse_args()

    r2e = ensure_r2e(args.r2e)
    compile_package()
    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s1"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, 1)
    work = args.out / "startup"
    shutil.rmtree(work, ignore_errors=True)
    samples: dict[str, list[dict[str, object]]] = {"aggregator": [], "rss2email": []}
    with Nginx(set_dir / "feeds") as web:
        pollers = []
        for make, arg in ((aggregator_poller, args.python), (r2e_poller, r2e)):
            folder = work / make.__name__.split("_")[0]
            folder.mkdir(parents=True)
            pollers.append(make(folder, manifest, web.url, arg))
        for p in pollers:  # cold (200s), then one warm pass not measured
            for expect in ("200", "304"):
                m, http = one_pass(p, web, args.timeout)
                print(f"  {p.name:<10} prime {expect}: {m.wall:6.2f} s  http={dict(http)}")
                if m.returncode != 0 or http.get(expect, 0) != manifest.feeds:
                    print(m.stderr[-2000:], file=sys.stderr)
                    return 1
        for run in range(args.runs):
            for p in pollers if run % 2 == 0 else reversed(pollers):
                m, http = one_pass(p, web, args.timeout)
                ok = m.returncode == 0 and http == Counter({"304": manifest.feeds})
                samples[p.name].append(
                    {"wall": m.wall, "cpu": m.cpu, "ok": ok, "load": os.getloadavg()[0]}
                )
                print(
                    f"  {p.name:<10} run {run + 1}: {m.wall:6.3f} s wall {m.cpu:6.3f} s cpu "
                    f"load {os.getloadavg()[0]:.1f} http={dict(http)}{'' if ok else ' NOT OK'}",
                    flush=True,
                )
        imports = import_profile(pollers[0], web)
        counted: dict[str, int] = {}
        if args.instructions:
            for p in pollers:
                n, http = instructions(p, web)
                counted[p.name] = n
                print(f"  {p.name:<10} {n / 1e6:,.0f} M instructions http={dict(http)}", flush=True)

    med = {
        name: {
            k: statistics.median(float(s[k]) for s in rows)  # type: ignore[arg-type]
            for k in ("wall", "cpu")
        }
        for name, rows in samples.items()
    }
    loads = [float(s["load"]) for rows in samples.values() for s in rows]  # type: ignore[arg-type]
    ok = all(bool(s["ok"]) for rows in samples.values() for s in rows)
    agg, peer = med["aggregator"], med["rss2email"]
    lines = [
        f"{manifest.feeds} feeds, every one answering 304; median of {args.runs} alternated "
        f"passes each, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
        f"aggregator at {git_head()}; 1-min load average {min(loads):.1f}-{max(loads):.1f}",
        "",
        "| poller | wall s | CPU s | runs (wall s) |",
        "|---|---:|---:|---|",
    ]
    for name, rows in samples.items():
        walls = " / ".join(f"{float(s['wall']):.3f}" for s in rows)  # type: ignore[arg-type]
        lines.append(f"| {name} | {med[name]['wall']:.3f} | {med[name]['cpu']:.3f} | {walls} |")
    verdict = "met" if agg["wall"] < TARGET else f"missed by {agg['wall'] - TARGET:.3f} s"
    lines += [
        "",
        f"rss2email / aggregator: {peer['wall'] / agg['wall']:.2f}x wall, "
        f"{peer['cpu'] / agg['cpu']:.2f}x CPU; target aggregator < {TARGET} s: {verdict}; "
        f"all passes 304-only and exit 0: {'yes' if ok else 'NO'}",
        "",
        "aggregator's imports in one more pass under -X importtime (self ms by package; "
        "importtime itself slows them):",
        "",
        ", ".join(f"{name} {ms:.0f}" for name, ms in imports),
    ]
    md = "\n".join(lines) + "\n"
    print("\n" + md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup-latest.md").write_text(md)
    (args.out / "startup-latest.json").write_text(
        json.dumps(
            {"samples": samples, "median": med, "imports": imports, "instructions": counted},
            indent=1,
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
