"""A big store: one changed item, and a full ``aggregator build``, over N stored items.

    python3 bench/big.py --items 1000000          # generate once (minutes), then measure
    python3 bench/big.py --items 1000000 --reuse  # measure again on the same database

Items are made directly as ``Item`` records (no fetch, no parse, bodies
already clean) and stored through ``Store.apply_items`` in large batches:
``--sources`` sources, 20 categories, a tenth of the items shared by two
sources through an infoCode. Then:

- one changed item: a source's second-newest item (its own, not shared) comes
  back with a new title; time ``apply_items`` of that one item plus
  ``write_outputs`` of the categories it reports changed (what ``aggregator poll`` does after it);
  median over ``--changes`` different items;
- a full build: ``aggregator build -c CONFIG`` as a child process with an
  empty output folder, median of ``--builds`` runs.

Writes bench/out/big-latest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
import measure  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
NEWEST = datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)


class Maker:
    """Deterministic items: (source index, position) -> the same Item every time."""

    def __init__(
        self,
        manifest: genfeeds.Manifest,
        per_source: int,
        body_bytes: int,
        shared: float,
        seed: int,
    ) -> None:
        self.specs = manifest.specs
        self.per_source = per_source
        self.shared_every = max(1, round(1 / shared)) if shared > 0 else 0
        rng = random.Random(seed)
        self.bodies = []
        for _ in range(256):
            parts, size = [], 0
            while size < body_bytes:
                p = genfeeds._paragraph(rng)
                parts.append(p)
                size += len(p.encode())
            self.bodies.append("".join(parts))
        self.titles = [genfeeds._title(rng) for _ in range(1024)]

    def item(self, s: int, j: int, title_suffix: str = ""):  # -> aggregator.model.Item
        from aggregator.model import Item

        spec = self.specs[s]
        n = len(self.specs)
        # every shared_every-th position of an even source is also carried by the next source
        owner = s - 1 if (self.shared_every and s % 2 == 1 and j % self.shared_every == 0) else s
        published = NEWEST - timedelta(seconds=30 * (j * n + owner))
        if owner != s or (
            self.shared_every and s % 2 == 0 and s + 1 < n and j % self.shared_every == 0
        ):
            infocode = f"NW2022{owner:06d}{j:06d}"
            key = f"ic:{infocode}"
            link = f"{genfeeds.LINK_HOST}/html_News/NewsShare.html?infoCode={infocode}"
            guid = f"{spec.id}:{infocode}"
        else:
            infocode = None
            guid = f"{spec.id}:{j}"
            key = f"src:{spec.id}:guid:{guid}"
            link = f"{genfeeds.LINK_HOST}/a/{spec.id}-{j}.html"
        title = self.titles[(owner * 7919 + j) % len(self.titles)] + title_suffix
        body = self.bodies[(owner * 131 + j) % len(self.bodies)]
        digest = hashlib.sha256(
            f"{title}|{link}|{published.isoformat()}|{spec.categories}".encode()
        ).hexdigest()
        return Item(
            key=key,
            source_id=spec.id,
            priority=0,
            title=title,
            link=link,
            guid=guid,
            infocode=infocode,
            content_raw=body,
            content_html=body,
            summary_html=None,
            author=genfeeds.PUBLISHERS[j % len(genfeeds.PUBLISHERS)],
            published=published,
            updated=published,
            categories=tuple(sorted(spec.categories)),
            content_hash=digest,
        )


def fill(store, maker: Maker, batch: int) -> int:
    """Store every item, source by source, ``batch`` items per apply_items call."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    done = 0
    next_report = 50_000
    for s, spec in enumerate(maker.specs):
        for start in range(0, maker.per_source, batch):
            items = [maker.item(s, j) for j in range(start, min(maker.per_source, start + batch))]
            store.apply_items(spec.id, items, now)
            done += len(items)
            if done >= next_report:
                el = time.perf_counter() - started
                print(f"  stored {done:,} versions in {el:.0f} s ({done / el:,.0f}/s)", flush=True)
                next_report += 50_000
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000, help="item versions to store")
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--body-bytes", type=int, default=800, help="HTML body size per item")
    ap.add_argument("--shared", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=1000, help="items per apply_items call")
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--builds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per build")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=OUT / "big")
    ap.add_argument("--reuse", action="store_true", help="keep an existing database of this size")
    args = ap.parse_args()

    from aggregator.config import load_config
    from aggregator.outputs import write_outputs
    from aggregator.store import Store

    per_source = max(1, args.items // args.sources)
    rng = random.Random(args.seed)
    cat_ids = [c for c, _ in genfeeds.CATEGORIES]
    specs = [
        genfeeds.FeedSpec(
            f"f{i + 1:04d}",
            f"f{i + 1:04d}.rss",
            "rss",
            rng.sample(cat_ids, rng.choice((1, 1, 2))),
            per_source,
        )
        for i in range(args.sources)
    ]
    manifest = genfeeds.Manifest(
        args.sources, per_source, args.seed, args.shared, args.sources * per_source, 0, 0, 0, specs
    )
    maker = Maker(manifest, per_source, args.body_bytes, args.shared, args.seed)
    work = args.dir
    marker = work / "params.json"
    params = {k: getattr(args, k) for k in ("items", "sources", "body_bytes", "shared", "seed")}
    cfg_path = work / "aggregator.toml"
    db = work / "agg.db"
    reuse = args.reuse and marker.exists() and json.loads(marker.read_text()) == params
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        genfeeds.write_aggregator_config(cfg_path, manifest, "http://127.0.0.1:9/")
    config = load_config(cfg_path)
    categories = [c for c in (config.category(cid) for cid in config.categories) if c]

    report: dict[str, object] = {
        "params": params,
        "date": datetime.now().astimezone().isoformat(timespec="minutes"),
        "machine": _machine(),
    }
    if not reuse:
        print(f"filling {db}: {args.sources} sources x {per_source} items", flush=True)
        store = Store.open(f"sqlite:///{db}")
        store.sync_config(config.sources, categories, datetime.now(UTC))
        t0 = time.perf_counter()
        stored = fill(store, maker, args.batch)
        fill_s = time.perf_counter() - t0
        store.close()
        marker.write_text(json.dumps(params))
        report["fill"] = {"versions": stored, "seconds": fill_s, "per_s": stored / fill_s}
        print(f"filled {stored:,} versions in {fill_s:.0f} s ({stored / fill_s:,.0f}/s)")
    # Gigabytes of freshly written pages would otherwise be flushed during the
    # measurements, and every fsync of an output file would wait behind them.
    t0 = time.perf_counter()
    os.sync()
    print(f"sync: {time.perf_counter() - t0:.1f} s", flush=True)
    report["db_mb"] = db.stat().st_size / 1e6

    # full build, as a child process, from an empty output folder each time
    builds = []
    for run in range(1, args.builds + 1):
        shutil.rmtree(config.aggregator.output_dir, ignore_errors=True)
        m = measure.run(
            [sys.executable, "-m", "aggregator", "build", "-c", str(cfg_path)],
            cwd=work,
            timeout=args.timeout,
            log=work / f"build-{run}",
        )
        builds.append(
            {
                "wall": m.wall,
                "cpu": m.cpu,
                "maxrss_mb": m.maxrss_mb,
                "rc": m.returncode,
                "out": m.stdout.strip()[-200:],
                "err": m.stderr.strip()[-300:],
            }
        )
        print(
            f"  build {run}: {m.wall:.2f} s wall, {m.cpu:.2f} s cpu, {m.maxrss_mb:.0f} MB, "
            f"rc={m.returncode} {m.stdout.strip()[-80:]} {m.stderr.strip()[-200:]}",
            flush=True,
        )
    report["build"] = {"runs": builds, "median_wall": statistics.median(b["wall"] for b in builds)}
    if not (config.aggregator.output_dir / "all.atom").exists():
        write_outputs(config, Store.open(f"sqlite:///{db}"), None)  # outputs must exist first

    # one changed item: apply + rewrite of its categories, in process
    store = Store.open(f"sqlite:///{db}")
    changes = []
    try:
        picks = random.Random(args.seed + 1).sample(range(args.sources), args.changes)
        stamp = time.time_ns()  # a title never used before: every change is a real one
        for n, s in enumerate(picks, start=1):
            item = maker.item(s, 1)  # 0 may be shared, and another source wins the merge
            changed = replace(
                item,
                title=item.title + f" 更新 {stamp}-{n}",
                content_hash=hashlib.sha256(f"{item.content_hash}{stamp}-{n}".encode()).hexdigest(),
            )
            t0 = time.perf_counter()
            result = store.apply_items(item.source_id, [changed], datetime.now(UTC))
            t1 = time.perf_counter()
            written = write_outputs(config, store, result.changed_categories)
            t2 = time.perf_counter()
            changes.append(
                {
                    "source": item.source_id,
                    "apply_ms": (t1 - t0) * 1e3,
                    "write_ms": (t2 - t1) * 1e3,
                    "total_ms": (t2 - t0) * 1e3,
                    "categories": sorted(result.changed_categories),
                    "updated": result.updated,
                    "files_written": written.written,
                }
            )
            print(
                f"  change {n}: {(t2 - t0) * 1e3:.1f} ms = apply {(t1 - t0) * 1e3:.1f} + "
                f"write {(t2 - t1) * 1e3:.1f} ({written.written} files written, categories "
                f"{sorted(result.changed_categories)}, updated={result.updated})",
                flush=True,
            )
    finally:
        store.close()
    report["change"] = {
        "runs": changes,
        "median_ms": statistics.median(c["total_ms"] for c in changes),
    }
    print(
        f"\n{args.items:,} items ({report['db_mb']:.0f} MB SQLite): one changed item "
        f"{report['change']['median_ms']:.1f} ms (median of {len(changes)}); full build "
        f"{report['build']['median_wall']:.2f} s (median of {len(builds)})"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "big-latest.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


def _machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    sys.exit(main())
