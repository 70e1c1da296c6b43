"""Rules (issue 16): re-applying 100 rules to 100,000 stored items, and ingest with 20 rules.

    python3 bench/rules.py reapply --items 100000 --rules 100 --runs 3
    python3 bench/rules.py ingest --feeds 1000 --items 50 --runs 3

reapply: a SQLite store of ``--items`` merged items (generated stories as
genfeeds.py makes them: 1-3 KB HTML bodies, Chinese and English titles,
100 sources over the bench categories), written once without rules; then per
run, on a fresh copy of it, ``Store.reapply_rules`` with ``--rules`` rules:
every stored item read, evaluated and the changed ones written. The rule mix
is drop/keep/file/unfile/retitle on title, author, link and the body's text,
some scoped by source globs or categories (``bench_rules`` below). With
``--edit`` the store starts as those rules left it and the last rule is edited
(the usual change: every item evaluated, few written); without it, from a
store made without rules (most items change).

ingest: as bench/ingest.py (dedupe + known_versions + apply_items per source,
fresh SQLite file per run), alternating runs without rules and with the
first 20 rules of the same mix; the loss is 1 - (items/s with) / (items/s
without), medians.

Prints medians and writes bench/out/rules-latest.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SOURCES = 100


def bench_rules(n: int) -> list[dict[str, Any]]:
    """``n`` rules of a realistic mix; the first 20 hold one of each kind."""
    zh, en = genfeeds.ZH_WORDS, genfeeds.EN_WORDS
    cats = [c for c, _ in genfeeds.CATEGORIES]
    rng = random.Random(16)
    kinds: list[dict[str, Any]] = [
        {"match": "广告|推广", "action": "drop"},
        {"match": r"^【广告】\s*", "action": "retitle", "replace": ""},
        {"match": "芯片|chip", "action": "file", "to": ["keji"]},
        {"match": "新能源|battery|solar", "action": "file", "to": ["nengyuan"]},
        {
            "match": "监管|regulator",
            "action": "unfile",
            "to": ["caijing"],
            "categories": ["caijing"],
        },
        {"field": "author", "match": "^财联社$", "action": "drop", "sources": ["s00*"]},
        {"field": "link", "match": "/promo/|utm_campaign=ad", "action": "drop"},
        {"match": "市场|market|shares", "action": "keep", "sources": ["s09*"]},
        {"field": "text", "match": "赌博|casino", "action": "drop"},
        {"field": "any", "match": "never-seen-token", "action": "drop"},
    ]
    rules = list(kinds)
    while len(rules) < n:
        i = len(rules)
        word, other = rng.choice(zh), rng.choice(en)
        kind = i % 10
        if kind in (0, 1, 2, 3):
            rule: dict[str, Any] = {"match": f"{word}{rng.choice(zh)}|{other} {rng.choice(en)}"}
            rule["action"] = "drop"
        elif kind in (4, 5):
            rule = {"match": f"{word}|{other}", "action": "file", "to": [rng.choice(cats)]}
        elif kind == 6:
            cat = rng.choice(cats)
            rule = {"match": word, "action": "unfile", "to": [cat], "categories": [cat]}
        elif kind == 7:
            rule = {"match": f"^{word}", "action": "retitle", "replace": ""}
        elif kind == 8:
            rule = {"field": "text", "match": f"{word}{rng.choice(zh)}{rng.choice(zh)}"}
            rule["action"] = "drop"
        else:
            rule = {"match": f"{other}.*{rng.choice(en)}", "action": "keep"}
            rule["sources"] = [f"s{rng.randint(0, 9)}{rng.randint(0, 9)}"]
        if i % 4 == 0 and "sources" not in rule:
            rule["sources"] = [f"s{rng.randint(0, 9)}*"]
        rules.append(rule)
    return rules[:n]


def compiled(n: int, *, edited: bool = False) -> Any:
    """The first ``n`` rules; ``edited``: with the last one's pattern changed (an admin's edit)."""
    from aggregator.config.schema import RuleConfig
    from aggregator.rules import NO_RULES, compile_rules

    tables = bench_rules(n)
    if edited and tables:
        tables[-1] = {**tables[-1], "match": tables[-1]["match"] + "|编辑过"}
    return compile_rules([RuleConfig(**r) for r in tables]) if n else NO_RULES


def build_store(path: Path, items: int, seed: int) -> None:
    """``items`` merged items, each from one of SOURCES sources, written in bulk."""
    from aggregator.config import SourceConfig
    from aggregator.model import Category
    from aggregator.rules import NO_RULES, body_text
    from aggregator.store import Store
    from aggregator.store.bodies import digest
    from aggregator.store.schema import bodies, item_categories, item_versions
    from aggregator.store.schema import items as items_t

    rng = random.Random(seed)
    cats = [c for c, _ in genfeeds.CATEGORIES]
    store = Store.open(f"sqlite:///{path}")
    now = datetime.now(UTC)
    sources = [
        SourceConfig(
            id=f"s{i:02d}", url=f"http://127.0.0.1:9/s{i:02d}.xml", categories=(cats[i % 12],)
        )
        for i in range(SOURCES)
    ]
    store.sync_config(sources, [Category(c, t) for c, t in genfeeds.CATEGORIES], now)
    rows, versions, filed, texts = [], [], [], {}
    for n in range(1, items + 1):
        story = genfeeds._story(rng, None, f"x{n}")
        source = sources[n % SOURCES]
        published = story.published.astimezone(UTC)
        key = f"src:{source.id}:guid:{n}"
        body = digest(story.body, None, story.body)  # the raw body is the sanitized one
        texts[body] = {
            "hash": body,
            "content_html": story.body,
            "raw_is_html": True,
            "plain_text": body_text(story.body),  # as bodies.write derives it
        }
        common = {
            "title": story.title,
            "link": f"https://news.example.org/{source.id}/{n}.html",
            "body": body,
            "author": story.author,
            "published": published,
            "updated": published,
            "content_hash": f"h{n}",
        }
        rows.append({"id": n, "key": key, "first_seen": now, **common})
        versions.append(
            {
                "source_id": source.id,
                "key": key,
                "item_id": n,
                "categories": source.categories,
                "priority": 0,
                "first_seen": now,
                "last_seen": now,
                **common,
            }
        )
        filed.append(
            {"item_id": n, "category_id": source.categories[0], "published": published, "key": key}
        )
    with store.engine.begin() as conn:
        for table, batch in (
            (bodies, list(texts.values())),
            (items_t, rows),
            (item_versions, versions),
            (item_categories, filed),
        ):
            for i in range(0, len(batch), 5000):
                conn.execute(table.insert(), batch[i : i + 5000])
        from aggregator.store import counts

        counts.recount(conn)
    store.reapply_rules(NO_RULES, now)  # the digest of "no rules": what the rows were made with
    store.close()


def flush(path: Path) -> None:
    """The copy on disk before the clock starts: else the first checkpoint of the timed
    transaction waits for the copy's hundreds of MB to be written (half the wall time)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reapply(args: argparse.Namespace) -> dict[str, Any]:
    from aggregator.store import Store

    rules = compiled(args.rules)
    engines = {"re2": 0, "regex": 0}
    for r in rules.rules:
        engines[r.matcher.engine] += 1
    base = args.out / f"rules-store-{args.items}-s{args.seed}.db"
    if not base.exists():
        started = time.perf_counter()
        build_store(base, args.items, args.seed)
        print(f"built {base.name} in {time.perf_counter() - started:.1f} s", flush=True)
    Store.open(f"sqlite:///{base}").close()  # a store cached before a migration: upgraded once
    if args.edit:  # the store as the rules left it; then one rule is edited
        ruled = args.out / f"rules-store-{args.items}-s{args.seed}-r{args.rules}.db"
        if not ruled.exists():
            shutil.copyfile(base, ruled)
            store = Store.open(f"sqlite:///{ruled}")
            store.reapply_rules(rules, datetime.now(UTC))
            store.close()
        base, rules = ruled, compiled(args.rules, edited=True)
    # what is loaded by now lives as long as the process: frozen out of the collector's
    # scans, as the CLI and the daemon do once loaded (cli.settling)
    gc.freeze()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        for run in range(1, args.runs + 1):
            db = Path(tmp) / "store.db"
            shutil.copyfile(base, db)
            flush(db)
            store = Store.open(f"sqlite:///{db}")
            try:
                cpu0, t0 = time.process_time(), time.perf_counter()
                done = store.reapply_rules(rules, datetime.now(UTC) + timedelta(seconds=1))
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            finally:
                store.close()
            load = os.getloadavg()[0]
            runs.append(
                {
                    "run": run,
                    "wall": wall,
                    "cpu": cpu,
                    "evaluated": done.evaluated,
                    "changed": done.changed,
                    "skipped": done.skipped,
                    "dropped": done.dropped,
                    "load1": load,
                }
            )
            print(
                f"  run {run}: {wall:.2f} s (CPU {cpu:.2f} s), {done.evaluated:,} items looked "
                f"at, {done.skipped:,} of them not evaluated again (no changed rule could act), "
                f"{done.changed:,} changed ({done.dropped:,} dropped); load {load:.1f}",
                flush=True,
            )
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu")}
    what = "one rule edited" if args.edit else "from no rules"
    print(
        f"\nreapply ({what}), {args.rules} rules "
        f"({engines['re2']} on RE2, {engines['regex']} on regex) "
        f"over {runs[0]['evaluated']:,} stored items, median of {args.runs}: "
        f"{med['wall']:.2f} s (CPU {med['cpu']:.2f} s)"
    )
    return {
        "rules": args.rules,
        "items": args.items,
        "edit": args.edit,
        "median": med,
        "runs": runs,
    }


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    from aggregator.dedupe import dedupe_feed
    from aggregator.store import Store

    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)
    settings = {"without": compiled(0), "with": compiled(args.rules)}
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="bench-rules-ingest-") as tmp:
        config, parsed, categories, total = genfeeds.load_set(set_dir, manifest, Path(tmp))
        for run in range(1, args.runs + 1):
            for name, rules in settings.items():
                db = Path(tmp) / f"{name}-{run}.db"
                store = Store.open(f"sqlite:///{db}")
                dropped = 0
                try:
                    store.sync_config(config.sources, categories, datetime.now(UTC))
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    for source, feed in parsed:
                        deduped = dedupe_feed(source, feed)
                        store.known_versions(source.id, [i.key for i in deduped.items])
                        now = datetime.now(UTC)
                        dropped += store.apply_items(source.id, deduped.items, now, rules).dropped
                    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                finally:
                    store.close()
                db.unlink()
                runs[name].append({"wall": wall, "cpu": cpu, "items_per_s": total / wall})
                print(
                    f"  run {run} {name:>7} rules: {wall:.2f} s (CPU {cpu:.2f} s), "
                    f"{total / wall:,.0f} items/s, dropped {dropped}; "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "items_per_s")}
        for name, rs in runs.items()
    }
    loss = 1 - med["with"]["items_per_s"] / med["without"]["items_per_s"]
    cpu_loss = 1 - med["without"]["cpu"] / med["with"]["cpu"]
    print(
        f"\ningest of {total:,} items, median of {args.runs}: without rules "
        f"{med['without']['items_per_s']:,.0f} items/s, with {args.rules} rules "
        f"{med['with']['items_per_s']:,.0f} items/s: {loss:.1%} slower "
        f"(CPU {med['without']['cpu']:.2f} s vs {med['with']['cpu']:.2f} s: {cpu_loss:.1%})"
    )
    return {"items": total, "rules": args.rules, "median": med, "loss": loss, "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    one = sub.add_parser("reapply")
    one.add_argument("--items", type=int, default=100_000)
    one.add_argument("--rules", type=int, default=100)
    one.add_argument(
        "--edit",
        action="store_true",
        help="start from the store the rules made, with one rule edited (else from no rules)",
    )
    two = sub.add_parser("ingest")
    two.add_argument("--feeds", type=int, default=1000)
    two.add_argument("--items", type=int, default=50)
    two.add_argument("--rules", type=int, default=20)
    for p in (one, two):
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--runs", type=int, default=3)
        p.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = reapply(args) if args.what == "reapply" else ingest(args)
    result["date"] = datetime.now().astimezone().isoformat(timespec="minutes")
    (args.out / f"rules-{args.what}-latest.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
