"""What the cross-source dedupe costs the ingest: off, links and similar side by side.

    python3 bench/dedupe_cost.py --feeds 200 --items 50 --rounds 7

The same work as ``bench/ingest.py --dedupe off|links|similar`` (dedupe_feed as update.py
asks it, known_versions and apply_items per source, on a fresh SQLite file), but the
three modes take turns within each round, in one process, their order turned by one
each round, so the load of a shared machine falls on all three alike; each mode's
figure is compared with ``off`` of its own round. Prints medians of wall and CPU
(process) time and of the bytes written per item, and of the per-round ratios, with the
load average before and after. ``off`` replaces canonical links, normalized titles and
the cross-source join with no-ops; ``links`` is the default; ``similar`` is ``[dedupe]
similar = true`` for every source.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from inspect import signature
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import ingest  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MODES = ("off", "links", "similar")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    from aggregator import dedupe
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

    def titles(on: bool) -> dict[str, Any]:
        """As update.py asks: normalized titles where similar is on (a tree from before
        issue 15's third pass makes them always: the before figures)."""
        return {"titles": on} if "titles" in signature(dedupe.dedupe_feed).parameters else {}

    set_dir = OUT / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-dedupe-") as tmp:
        config, parsed, categories, total = genfeeds.load_set(set_dir, manifest, Path(tmp))
        load = os.getloadavg()
        for rnd in range(1, args.rounds + 1):
            turn = rnd % len(MODES)
            for name in MODES[turn:] + MODES[:turn]:
                similar = mode(name)
                db = Path(tmp) / f"{name}-{rnd}.db"
                store = Store.open(f"sqlite:///{db}")
                try:
                    now = datetime.now(UTC)
                    store.sync_config(config.sources, categories, now)
                    wall0, cpu0 = time.perf_counter(), time.process_time()
                    written0 = ingest._written()
                    for source, feed in parsed:
                        deduped = dedupe.dedupe_feed(
                            source, feed, raw_for_posts=True, **titles(similar is not None)
                        )
                        store.known_versions(source.id, [i.key for i in deduped.items])
                        store.apply_items(source.id, deduped.items, now, similar=similar)
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                    written = (ingest._written() - written0) / total
                finally:
                    store.close()
                db.unlink()
                results[name].append({"wall": wall, "cpu": cpu, "written": written})
                print(
                    f"round {rnd} {name:<8} wall {wall:6.2f} s  CPU {cpu:5.2f} s  "
                    f"written {written:,.0f} B/item",
                    flush=True,
                )
    after = os.getloadavg()
    print(
        f"\n{total:,} items, {args.rounds} rounds; medians (ratio: median of per-round ratios); "
        f"load average {load[0]:.2f} before, {after[0]:.2f} after"
    )
    for name in MODES:
        print(_line(name, results[name], results["off"], total))
    return 0


def _line(name: str, runs: list[dict[str, float]], off: list[dict[str, float]], n: int) -> str:
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "written")}
    ratio: dict[str, Any] = {
        k: statistics.median(r[k] / o[k] for r, o in zip(runs, off, strict=True)) - 1
        for k in ("wall", "cpu", "written")
    }
    vs = (
        ""
        if name == "off"
        else f"  vs off: wall {ratio['wall']:+.1%}, CPU {ratio['cpu']:+.1%}, "
        f"written {ratio['written']:+.1%}"
    )
    return (
        f"{name:<8} wall {med['wall']:5.2f} s ({n / med['wall']:,.0f} items/s)  "
        f"CPU {med['cpu']:5.2f} s  written {med['written']:,.0f} B/item{vs}"
    )


if __name__ == "__main__":
    sys.exit(main())
