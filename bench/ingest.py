"""Ingest throughput: items/s through dedupe and the store on SQLite, in process.

    python3 bench/ingest.py --feeds 1000 --items 50 --runs 3

Parses every generated feed once (not timed), then per run, on a fresh
SQLite file: for each source, ``dedupe_feed`` (keys, hash, sanitize),
``known_versions`` and ``apply_items``, as ``update.py`` does after a fetch.
Prints the median of the runs, split by stage, and writes
bench/out/ingest-latest.json.

``--dedupe off`` measures without canonical links, normalized titles and the
cross-source join (issue 15: their cost against the ingest); ``links`` is the
default; ``similar`` also joins near-duplicates (``[dedupe] similar = true``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--dedupe", choices=("off", "links", "similar"), default="links")
    args = ap.parse_args()
    similar = _dedupe_mode(args.dedupe)

    from aggregator.config import load_config
    from aggregator.dedupe import dedupe_feed
    from aggregator.model import Fetched
    from aggregator.parse import parse_feed
    from aggregator.store import Store

    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    base = "http://127.0.0.1:9/"
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        cfg_path = Path(tmp) / "aggregator.toml"
        genfeeds.write_aggregator_config(cfg_path, manifest, base)
        config = load_config(cfg_path)
        tz = config.aggregator.tz
        started = time.perf_counter()
        parsed = []
        for source, spec in zip(config.sources, manifest.specs, strict=True):
            body = (set_dir / "feeds" / spec.path).read_bytes()
            ctype = "application/rss+xml" if spec.kind == "rss" else "application/atom+xml"
            fetched = Fetched(
                source.url, 200, body, {"content-type": ctype}, datetime.now(UTC), 0.0
            )
            parsed.append((source, parse_feed(fetched, tz=tz)))
        parse_s = time.perf_counter() - started
        total = sum(len(p.items) for _, p in parsed)
        print(
            f"parsed {len(parsed)} feeds, {total:,} items in {parse_s:.2f} s "
            f"({total / parse_s:,.0f} items/s, not part of the ingest figure)",
            flush=True,
        )
        categories = [c for c in (config.category(cid) for cid in config.categories) if c]

        for run in range(1, args.runs + 1):
            db = Path(tmp) / f"ingest-{run}.db"
            store = Store.open(f"sqlite:///{db}")
            try:
                now = datetime.now(UTC)
                store.sync_config(config.sources, categories, now)
                t_dedupe = t_known = t_apply = 0.0
                cpu0 = time.process_time()
                new = updated = 0
                for source, feed in parsed:
                    t0 = time.perf_counter()
                    deduped = dedupe_feed(source, feed)
                    t1 = time.perf_counter()
                    store.known_versions(source.id, [i.key for i in deduped.items])
                    t2 = time.perf_counter()
                    result = store.apply_items(source.id, deduped.items, now, similar=similar)
                    t3 = time.perf_counter()
                    t_dedupe += t1 - t0
                    t_known += t2 - t1
                    t_apply += t3 - t2
                    new += result.new
                    updated += result.updated
                cpu = time.process_time() - cpu0
            finally:
                store.close()
            wall = t_dedupe + t_known + t_apply
            runs.append(
                {
                    "run": run,
                    "wall": wall,
                    "cpu": cpu,
                    "dedupe": t_dedupe,
                    "known": t_known,
                    "apply": t_apply,
                    "new": new,
                    "updated": updated,
                    "items_per_s": total / wall,
                    "db_mb": db.stat().st_size / 1e6,
                }
            )
            print(
                f"  run {run}: {wall:6.2f} s = dedupe {t_dedupe:.2f} + known_versions "
                f"{t_known:.2f} + apply_items {t_apply:.2f}; {total / wall:,.0f} items/s "
                f"(CPU {cpu:.2f} s: {total / cpu:,.0f} items/CPU-s; new={new} updated={updated}, "
                f"db {db.stat().st_size / 1e6:.0f} MB)",
                flush=True,
            )
            db.unlink()

    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("wall", "cpu", "dedupe", "known", "apply", "items_per_s")
    }
    print(
        f"\ningest (dedupe {args.dedupe}), {manifest.feeds} feeds x {manifest.items} items "
        f"= {total:,} items, "
        f"median of {args.runs}: {med['items_per_s']:,.0f} items/s ({med['wall']:.2f} s: "
        f"dedupe {med['dedupe']:.2f}, known_versions {med['known']:.2f}, "
        f"apply_items {med['apply']:.2f}); CPU {med['cpu']:.2f} s = "
        f"{total / med['cpu']:,.0f} items per CPU-second"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest-latest.json").write_text(
        json.dumps(
            {
                "feeds": manifest.feeds,
                "items": total,
                "parse_s": parse_s,
                "median": med,
                "runs": runs,
                "date": datetime.now().astimezone().isoformat(timespec="minutes"),
            },
            indent=1,
        )
    )
    return 0


def _dedupe_mode(mode: str) -> object:
    """Switch the cross-source dedupe off for ``off``; the similar rule for ``similar``."""
    from aggregator import dedupe
    from aggregator.similar import SimilarRule
    from aggregator.store import items

    if mode == "off":
        dedupe.canonical_link = lambda *_: None  # type: ignore[assignment]
        dedupe.normalized_title = lambda *_: None  # type: ignore[assignment]
        items.joins = lambda *_: {}  # type: ignore[assignment]
    return SimilarRule() if mode == "similar" else None


if __name__ == "__main__":
    sys.exit(main())
