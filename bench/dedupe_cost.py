"""What the cross-source dedupe costs the ingest: off, links and similar side by side.

    python3 bench/dedupe_cost.py --feeds 200 --items 50 --rounds 5

The same work as ``bench/ingest.py --dedupe off|links|similar`` (dedupe_feed,
known_versions and apply_items per source, on a fresh SQLite file), but the three
modes take turns within each round, in one process, so the load of a shared machine
falls on all three alike; each mode's figure is compared with ``off`` of its own
round. Prints medians of wall and CPU (process) time, and of the per-round ratios.
``off`` replaces canonical links, normalized titles and the cross-source join with
no-ops; ``links`` is the default; ``similar`` is ``[dedupe] similar = true``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MODES = ("off", "links", "similar")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from aggregator import dedupe
    from aggregator.config import load_config
    from aggregator.similar import SimilarRule
    from aggregator.store import Store, items

    real = (dedupe.canonical_link, dedupe.normalized_title, items.joins)

    def mode(name: str) -> SimilarRule | None:
        if name == "off":
            dedupe.canonical_link = lambda *_: None  # type: ignore[assignment]
            dedupe.normalized_title = lambda *_: None  # type: ignore[assignment]
            items.joins = lambda *_: {}  # type: ignore[assignment]
        else:
            dedupe.canonical_link, dedupe.normalized_title, items.joins = real
        return SimilarRule() if name == "similar" else None

    set_dir = OUT / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-dedupe-") as tmp:
        cfg_path = Path(tmp) / "aggregator.toml"
        genfeeds.write_aggregator_config(cfg_path, manifest, "http://127.0.0.1:9/")
        config = load_config(cfg_path)
        parsed = genfeeds.parse_set(set_dir, manifest, config)
        total = sum(len(p.items) for _, p in parsed)
        categories = [c for c in (config.category(cid) for cid in config.categories) if c]
        for rnd in range(1, args.rounds + 1):
            for name in MODES:
                similar = mode(name)
                db = Path(tmp) / f"{name}-{rnd}.db"
                store = Store.open(f"sqlite:///{db}")
                try:
                    now = datetime.now(UTC)
                    store.sync_config(config.sources, categories, now)
                    wall0, cpu0 = time.perf_counter(), time.process_time()
                    for source, feed in parsed:
                        deduped = dedupe.dedupe_feed(source, feed)
                        store.known_versions(source.id, [i.key for i in deduped.items])
                        store.apply_items(source.id, deduped.items, now, similar=similar)
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                finally:
                    store.close()
                db.unlink()
                results[name].append({"wall": wall, "cpu": cpu})
                print(f"round {rnd} {name:<8} wall {wall:6.2f} s  CPU {cpu:5.2f} s", flush=True)
    print(f"\n{total:,} items, {args.rounds} rounds; medians (ratio: median of per-round ratios)")
    for name in MODES:
        print(_line(name, results[name], results["off"], total))
    return 0


def _line(name: str, runs: list[dict[str, float]], off: list[dict[str, float]], n: int) -> str:
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    ratio: dict[str, Any] = {
        k: statistics.median(r[k] / o[k] for r, o in zip(runs, off, strict=True)) - 1
        for k in ("wall", "cpu")
    }
    vs = "" if name == "off" else f"  vs off: wall {ratio['wall']:+.1%}, CPU {ratio['cpu']:+.1%}"
    return f"{name:<8} wall {wall:5.2f} s ({n / wall:,.0f} items/s)  CPU {cpu:5.2f} s{vs}"


if __name__ == "__main__":
    sys.exit(main())
