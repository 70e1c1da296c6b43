"""Ingest throughput: items/s through dedupe and the store, in process.

    python3 bench/ingest.py --feeds 1000 --items 50 --runs 3
    python3 bench/ingest.py --workers 8          # as the poll's pool of 8 does
    python3 bench/ingest.py --database postgresql://postgres@127.0.0.1:5432/postgres

Parses every generated feed once (not timed), then per run, on a fresh
database (a SQLite file; with ``--database``, a new PostgreSQL database made
through that server URL and dropped after): for each source, ``dedupe_feed``
(keys, hash, sanitize), ``known_versions`` and ``apply_items``, as
``update.py`` does after a fetch. ``--workers 1`` (the default) runs the
sources one after another and splits the time by stage; more runs them in a
pool of that many threads, as ``poll_sources`` does, so their applies share
commits (store/group.py). Prints the median of the runs and the bytes the
store holds per item, and writes bench/out/ingest-latest.json.

``--dedupe off`` measures without canonical links, normalized titles and the
cross-source join (issue 15: their cost against the ingest); ``links`` is the
default; ``similar`` also joins near-duplicates (``[dedupe] similar = true``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database", help="a PostgreSQL server URL (default: a SQLite file)")
    ap.add_argument(
        "--copy", choices=("on", "off"), default="on", help="PostgreSQL: COPY or executemany"
    )
    args = ap.parse_args()
    from aggregator.store import bulk

    bulk.COPY = args.copy == "on"
    similar = _dedupe_mode(args.dedupe)

    from aggregator.config import load_config
    from aggregator.dedupe import dedupe_feed
    from aggregator.store import Store

    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    base = "http://127.0.0.1:9/"
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        cfg_path = Path(tmp) / "aggregator.toml"
        genfeeds.write_aggregator_config(cfg_path, manifest, base)
        config = load_config(cfg_path)
        started = time.perf_counter()
        parsed = genfeeds.parse_set(set_dir, manifest, config)
        parse_s = time.perf_counter() - started
        total = sum(len(p.items) for _, p in parsed)
        print(
            f"parsed {len(parsed)} feeds, {total:,} items in {parse_s:.2f} s "
            f"({total / parse_s:,.0f} items/s, not part of the ingest figure)",
            flush=True,
        )
        categories = [c for c in (config.category(cid) for cid in config.categories) if c]

        for run in range(1, args.runs + 1):
            with _database(args.database, Path(tmp), run) as (url, size):
                store = Store.open(url)
                try:
                    now = datetime.now(UTC)
                    store.sync_config(config.sources, categories, now)
                    cpu0 = time.process_time()
                    wall0 = time.perf_counter()
                    written0 = _written()
                    stages = _ingest(store, parsed, now, similar, args.workers, dedupe_feed)
                    wall = time.perf_counter() - wall0
                    cpu = time.process_time() - cpu0
                    written = _written() - written0
                finally:
                    store.close()
                stored = size()
            runs.append(
                {
                    "run": run,
                    "wall": wall,
                    "cpu": cpu,
                    **stages,
                    "items_per_s": total / wall,
                    "db_mb": stored / 1e6,
                    "bytes_per_item": stored / total,
                    "written_per_item": written / total,
                }
            )
            split = (
                f" = dedupe {stages['dedupe']:.2f} + known_versions {stages['known']:.2f}"
                f" + apply_items {stages['apply']:.2f}"
                if args.workers == 1
                else f" ({args.workers} workers)"
            )
            print(
                f"  run {run}: {wall:6.2f} s{split}; {total / wall:,.0f} items/s "
                f"(CPU {cpu:.2f} s: {total / cpu:,.0f} items/CPU-s; new={stages['new']} "
                f"updated={stages['updated']}, store {stored / 1e6:.0f} MB = "
                f"{stored / total:,.0f} bytes/item; {written / total:,.0f} bytes written/item)",
                flush=True,
            )

    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("wall", "cpu", "dedupe", "known", "apply", "items_per_s", "bytes_per_item")
    }
    split = (
        f": dedupe {med['dedupe']:.2f}, known_versions {med['known']:.2f}, "
        f"apply_items {med['apply']:.2f}"
        if args.workers == 1
        else f", {args.workers} workers"
    )
    print(
        f"\ningest (dedupe {args.dedupe}, "
        f"{f'PostgreSQL, COPY {args.copy}' if args.database else 'SQLite'}), "
        f"{manifest.feeds} feeds x {manifest.items} items = {total:,} items, "
        f"median of {args.runs}: {med['items_per_s']:,.0f} items/s ({med['wall']:.2f} s{split}); "
        f"CPU {med['cpu']:.2f} s = {total / med['cpu']:,.0f} items per CPU-second; "
        f"{med['bytes_per_item']:,.0f} bytes stored per item"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest-latest.json").write_text(
        json.dumps(
            {
                "feeds": manifest.feeds,
                "items": total,
                "workers": args.workers,
                "database": "postgresql" if args.database else "sqlite",
                "parse_s": parse_s,
                "median": med,
                "runs": runs,
                "date": datetime.now().astimezone().isoformat(timespec="minutes"),
            },
            indent=1,
        )
    )
    return 0


def _written() -> int:
    """Bytes this process has handed to write() (SQLite: WAL, checkpoints, temp files)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ingest(
    store: Any, parsed: list[Any], now: datetime, similar: Any, workers: int, dedupe_feed: Any
) -> dict[str, Any]:
    """Every source through dedupe, known_versions and apply_items; the time per stage
    (summed over the sources: with several workers the stages overlap)."""
    lock = threading.Lock()
    took = {"dedupe": 0.0, "known": 0.0, "apply": 0.0, "new": 0, "updated": 0}

    def one(source: Any, feed: Any) -> None:
        t0 = time.perf_counter()
        # as update.py asks: normalized titles only where similar is on
        deduped = dedupe_feed(source, feed, raw_for_posts=True, titles=similar is not None)
        t1 = time.perf_counter()
        store.known_versions(source.id, [i.key for i in deduped.items])
        t2 = time.perf_counter()
        result = store.apply_items(source.id, deduped.items, now, similar=similar)
        t3 = time.perf_counter()
        with lock:
            took["dedupe"] += t1 - t0
            took["known"] += t2 - t1
            took["apply"] += t3 - t2
            took["new"] += result.new
            took["updated"] += result.updated

    if workers == 1:
        for source, feed in parsed:
            one(source, feed)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in [pool.submit(one, source, feed) for source, feed in parsed]:
                done.result()
    return took


@contextmanager
def _database(server: str | None, tmp: Path, run: int) -> Iterator[tuple[str, Any]]:
    """A fresh store's URL, and how to read its size (after the store is closed)."""
    if server is None:
        db = tmp / f"ingest-{run}.db"
        try:
            yield f"sqlite:///{db}", lambda: db.stat().st_size
        finally:
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                path.unlink(missing_ok=True)
        return
    import psycopg
    from sqlalchemy import make_url

    admin = make_url(server).set(drivername="postgresql")
    name = f"bench_ingest_{os.getpid()}_{run}"
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name)

    def size() -> int:
        with psycopg.connect(url.render_as_string(hide_password=False)) as c:
            row = c.execute("SELECT pg_database_size(current_database())").fetchone()
            empty = c.execute("SELECT pg_database_size('template1')").fetchone()
            return int(row[0]) - int(empty[0]) if row and empty else 0

    try:
        yield url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False), size
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
