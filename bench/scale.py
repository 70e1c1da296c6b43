"""How many sources one instance carries: CPU per poll, as ``aggregator poll`` spends it.

    python3 bench/scale.py --feeds 300 --items 20 [--database postgresql://...]

Generates N feeds (bench/genfeeds.py), serves them with nginx (bench/nginx.py)
and times three rounds of one ``aggregator poll`` over all of them:

    cold       every feed new: fetch, parse, dedupe, store, write every feed
    304        nothing changed and the server says so (conditional GET)
    same 200   every file touched: full fetch and parse, same content, no writes

The poller's CPU (user+sys, from wait4) less that of a run polling one
source (start-up, migration check, index pages), per source, gives the
sources one core carries at a given interval: interval / CPU per poll. On
PostgreSQL the server's own CPU is not in that figure (it runs apart).
Prints a markdown table; docs/scaling.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import measure  # noqa: E402
from nginx import Nginx  # noqa: E402

INTERVALS = {"1m": 60, "15m": 900}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--database", default=None, help="SQLAlchemy URL; default a SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aggregator-scale-") as tmp:
        out = Path(tmp)
        out.chmod(0o755)  # nginx's workers run as another user
        manifest = genfeeds.generate(out, args.feeds, args.items)
        with Nginx(out / "feeds") as web:
            config = out / "aggregator.toml"
            genfeeds.write_aggregator_config(config, manifest, web.url, workers=args.workers)
            if args.database:
                text = config.read_text().replace('"sqlite:///agg.db"', f'"{args.database}"')
                config.write_text(text)
            cmd = [sys.executable, "-m", "aggregator", "poll", "-c", str(config)]
            rows = []
            for name in ("cold", "304", "same 200", "baseline"):
                if name == "same 200":
                    for path in (out / "feeds").iterdir():
                        os.utime(path)  # new Last-Modified and ETag, same bytes
                one = ["--source", manifest.specs[0].id] if name == "baseline" else []
                mark = web.log_mark()
                got = measure.run(cmd + one, cwd=out, timeout=1800)
                rows.append((name, got, dict(web.statuses_since(mark))))
    base = rows[-1][1].cpu
    db = "PostgreSQL" if args.database else "SQLite"
    print(
        f"{args.feeds} feeds x {args.items} items, {db}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| round | wall s | CPU s | CPU ms/poll | sources per core at 1m | at 15m | statuses |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(f"| one source (fixed cost) | {rows[-1][1].wall:.1f} | {base:.1f} | | | | |")
    for name, got, statuses in rows[:-1]:
        per_poll = max(got.cpu - base, 0.001) / args.feeds
        carried = {k: int(v / per_poll) for k, v in INTERVALS.items()}
        print(
            f"| {name} | {got.wall:.1f} | {got.cpu:.1f} | {per_poll * 1000:.0f} | "
            f"{carried['1m']:,} | {carried['15m']:,} | {statuses} |"
        )


if __name__ == "__main__":
    main()
