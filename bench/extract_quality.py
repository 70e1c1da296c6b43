"""Which article extractor keeps the article and drops the rest, on real pages.

Each page in bench/data/fulltext/ comes with phrases that must be in the
extracted text (the article's key sentences) and phrases that must not
(navigation, ads, related links, comments); see bench/data/fulltext/README.md.
Every candidate runs through the same sanitizer and text step the feeds use,
so the figures are for what a reader would see.

    recall     share of the key sentences found
    precision  found key sentences / (found key sentences + boilerplate kept)
    kept       share of the boilerplate phrases that survived

Run: python bench/extract_quality.py [-v]   (prints one row per library)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aggregator.extract import FulltextRule, auto_html
from aggregator.parse.encoding import decode_body
from aggregator.sanitize import clean_html, text_of

DATA = Path(__file__).parent / "data" / "fulltext"
BASE = "https://example.org/article/"


def with_trafilatura(page: str) -> str | None:
    """What ``fulltext = "auto"`` does (aggregator.extract)."""
    return auto_html(page, BASE)


def with_readability(page: str) -> str | None:
    from readability import Document  # readability-lxml, installed for this bench only

    return Document(page, url=BASE).summary(html_partial=True)


def whole_page(page: str) -> str | None:
    """No extraction: the page's whole text, for scale."""
    return page


CANDIDATES: dict[str, Callable[[str], str | None]] = {
    "trafilatura": with_trafilatura,
    "readability-lxml": with_readability,
    "(whole page)": whole_page,
}


def _norm(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="print each page's misses")
    args = ap.parse_args()
    expectations = json.loads((DATA / "expectations.json").read_text("utf-8"))
    pages = {
        name: decode_body(gzip.decompress((DATA / f"{name}.gz").read_bytes())).text
        for name in expectations
    }
    assert FulltextRule("auto").kind == "auto"
    print(f"{len(pages)} pages; {sum(_is_cjk(n, e) for n, e in expectations.items())} Chinese")
    print(f"{'library':18} {'recall':>7} {'precision':>9} {'kept':>6} {'failed':>6} {'s/page':>7}")
    for label, extract in CANDIDATES.items():
        started = time.perf_counter()
        totals = {"all": [0, 0, 0, 0, 0], "Chinese": [0, 0, 0, 0, 0]}
        for name, exp in expectations.items():
            try:
                html = extract(pages[name])
            except Exception as exc:  # a library crash counts as extracting nothing
                print(f"  {label}: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                html = None
            text = _norm(text_of(clean_html(html, base_url=BASE))) if html else ""
            with_ = exp["with"]
            without = exp["without"] + exp.get("comments", [])
            hit = [w for w in with_ if _norm(w) in text]
            bad = [w for w in without if _norm(w) in text]
            for group in ("all", "Chinese") if _is_cjk(name, exp) else ("all",):
                t = totals[group]
                t[0], t[1], t[2], t[3] = (
                    t[0] + len(hit),
                    t[1] + len(with_),
                    t[2] + len(bad),
                    t[3] + len(without),
                )
                t[4] += not html
            if args.verbose and (len(hit) < len(with_) or bad):
                missed = [w for w in with_ if w not in hit]
                print(f"  {label}: {name}: missed {missed} kept {bad}")
        per_page = (time.perf_counter() - started) / len(expectations)
        for group, (found, wanted, kept, unwanted, failed) in totals.items():
            precision = found / (found + kept) if found + kept else 0.0
            name = label if group == "all" else f"  {group} only"
            print(
                f"{name:18} {found / wanted:7.3f} {precision:9.3f} {kept / unwanted:6.3f}"
                f" {failed:6d} {per_page if group == 'all' else float('nan'):7.3f}"
            )
    return 0


def _is_cjk(name: str, exp: dict[str, list[str]]) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for phrase in exp["with"] for ch in phrase)


if __name__ == "__main__":
    sys.exit(main())
