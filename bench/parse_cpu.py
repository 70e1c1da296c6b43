"""CPU per item of the parse and dedupe stages, in process, and their records for comparison.

    python3 bench/parse_cpu.py time --feeds 100 --runs 5        # us/item of CPU per stage
    python3 bench/parse_cpu.py profile --feeds 100 [--stage dedupe]  # cProfile, by own time
    python3 bench/parse_cpu.py dump out.txt [--feeds 1000]     # every record, one per line
    python3 bench/parse_cpu.py compare before.txt after.txt

``time`` measures process time (steady on a shared machine, unlike wall) over
the first ``--feeds`` feeds of the bench set (genfeeds, seed 1, 50 items a
feed): ``parse_document`` as a parse child runs it, ``dedupe_feed`` of its
result, and the trip of the ``Deduped`` back from the child (pickle out, pickle
in). Each figure is the median of ``--runs`` passes, divided by the items.

``dump`` writes the ``ParsedFeed`` and ``Deduped`` of every feed fixture
(shared fixtures, tests/data/parse/feeds) and of the bench set, through both
parse paths (``parse_document``, and feedparser forced), so a change to either
path or to dedupe can be shown to change no record: ``compare`` prints the
lines that differ between two dumps.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import pstats
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = str(Path(__file__).resolve().parent)
# bench/profile.py would stand in for the standard library's profile module, which cProfile needs
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(HERE)]
import cProfile  # noqa: E402

sys.path.insert(0, HERE)

import genfeeds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TZ = ZoneInfo("Asia/Shanghai")
FIXTURE_DIRS = [
    Path(os.environ.get("AGGREGATOR_FEED_FIXTURES", ROOT.parent / "shared" / "fixtures" / "feeds")),
    ROOT / "tests" / "data" / "parse" / "feeds",
]


@dataclass(frozen=True)
class Source:
    """An ``ItemSource`` for documents that have no configured source."""

    id: str
    priority: int = 0
    categories: tuple[str, ...] = ("news",)
    category_from: str | None = None


def bench_docs(feeds: int) -> list[tuple[str, bytes, str, Source]]:
    """(name, body, content type, source) of the first ``feeds`` bench feeds."""
    set_dir = OUT / "sets" / "1000x50-s1"
    manifest = genfeeds.ensure(set_dir, 1000, 50, 1)
    docs = []
    for spec in manifest.specs[:feeds]:
        ctype = "application/rss+xml" if spec.kind == "rss" else "application/atom+xml"
        body = (set_dir / "feeds" / spec.path).read_bytes()
        docs.append((spec.path, body, ctype, Source(spec.id, categories=tuple(spec.categories))))
    return docs


def fixture_docs() -> Iterator[tuple[str, bytes, Source]]:
    for folder in FIXTURE_DIRS:
        for path in sorted(folder.iterdir()):
            if path.suffix in (".json", ".md") or not path.is_file():
                continue
            yield path.name, path.read_bytes(), Source("fx", category_from="author")


def _parse(body: bytes, ctype: str | None, url: str = "http://127.0.0.1:8000/feed"):
    from aggregator.parse.feed import parse_document

    return parse_document(body, ctype, url, None, TZ, None, 1000)


def time_stages(feeds: int, runs: int) -> None:
    from aggregator.dedupe import dedupe_feed

    docs = bench_docs(feeds)
    items = 0
    parse_s: list[float] = []
    dedupe_s: list[float] = []
    pickle_s: list[float] = []
    for _ in range(runs):
        p = d = k = 0.0
        items = 0
        for _name, body, ctype, source in docs:
            t0 = time.process_time()
            feed = _parse(body, ctype)
            t1 = time.process_time()
            deduped = dedupe_feed(source, feed)
            t2 = time.process_time()
            pickle.loads(pickle.dumps((True, deduped, False), protocol=pickle.HIGHEST_PROTOCOL))
            t3 = time.process_time()
            p, d, k = p + t1 - t0, d + t2 - t1, k + t3 - t2
            items += len(feed.items)
        parse_s.append(p)
        dedupe_s.append(d)
        pickle_s.append(k)
    us = 1e6 / items
    print(f"{len(docs)} feeds, {items} items, {runs} runs; CPU us/item median (min-max):")
    for label, values in (("parse", parse_s), ("dedupe", dedupe_s), ("pickle", pickle_s)):
        print(
            f"  {label:7} {statistics.median(values) * us:7.1f} "
            f"({min(values) * us:.1f}-{max(values) * us:.1f})"
        )
    total = [a + b + c for a, b, c in zip(parse_s, dedupe_s, pickle_s, strict=True)]
    print(f"  {'total':7} {statistics.median(total) * us:7.1f}")


def profile(feeds: int, stage: str, top: int) -> None:
    from aggregator.dedupe import dedupe_feed

    docs = bench_docs(feeds)
    parsed = [(_parse(body, ctype), source) for _n, body, ctype, source in docs]
    prof = cProfile.Profile(time.process_time)
    if stage == "parse":
        prof.enable()
        for _n, body, ctype, _s in docs:
            _parse(body, ctype)
        prof.disable()
    elif stage == "dedupe":
        prof.enable()
        for feed, source in parsed:
            dedupe_feed(source, feed)
        prof.disable()
    else:
        deduped = [dedupe_feed(source, feed) for feed, source in parsed]
        prof.enable()
        for d in deduped:
            pickle.loads(pickle.dumps((True, d, False), protocol=pickle.HIGHEST_PROTOCOL))
        prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def dump(path: Path, feeds: int) -> None:
    from aggregator.dedupe import dedupe_feed
    from aggregator.parse.feed import parse_feedparser

    lines: list[str] = []
    docs = [(n, b, None, s) for n, b, s in fixture_docs()]
    docs += bench_docs(feeds)
    url = "http://127.0.0.1:8000/feed"
    for name, body, ctype, source in docs:
        for path_name in ("document", "feedparser"):
            try:
                if path_name == "document":
                    feed = _parse(body, ctype, url)
                else:
                    feed = parse_feedparser(body, ctype, url, None, TZ, None, 1000)
            except Exception as exc:  # noqa: BLE001 - the error is the record
                lines.append(f"{name}\t{path_name}\traises {type(exc).__name__}: {exc}")
                continue
            lines.append(_line(f"{name}\t{path_name}\tfeed", feed))
            try:
                value: object = dedupe_feed(source, feed)
            except Exception as exc:  # noqa: BLE001
                value = f"raises {type(exc).__name__}: {exc}"
            lines.append(_line(f"{name}\t{path_name}\tdedupe", value))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(docs)} documents, {len(lines)} records -> {path}")


def _line(label: str, value: object) -> str:
    """The record's digest (a dump of the bench set in full would be ~1 GB) and its start."""
    text = repr(value)
    return f"{label}\t{hashlib.sha256(text.encode()).hexdigest()}\t{text[:200]}"


def compare(a: Path, b: Path) -> int:
    left = a.read_text(encoding="utf-8").splitlines()
    right = b.read_text(encoding="utf-8").splitlines()
    if len(left) != len(right):
        print(f"record counts differ: {len(left)} vs {len(right)}")
    differ = [(x, y) for x, y in zip(left, right, strict=False) if x != y]
    for x, y in differ[:5]:
        print(f"- {x[:300]}\n+ {y[:300]}")
    print(f"{len(differ)} of {len(left)} records differ")
    return 1 if differ or len(left) != len(right) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--feeds", type=int, default=100)
    t.add_argument("--runs", type=int, default=5)
    p = sub.add_parser("profile")
    p.add_argument("--feeds", type=int, default=100)
    p.add_argument("--stage", choices=("parse", "dedupe", "pickle"), default="parse")
    p.add_argument("--top", type=int, default=30)
    d = sub.add_parser("dump")
    d.add_argument("path", type=Path)
    d.add_argument("--feeds", type=int, default=1000)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "time":
        time_stages(args.feeds, args.runs)
    elif args.cmd == "profile":
        profile(args.feeds, args.stage, args.top)
    elif args.cmd == "dump":
        dump(args.path, args.feeds)
    else:
        return compare(args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
