"""Precision and recall of the cross-source merge on a labelled set built from real feeds.

tests/data/dedupe_labelled/items.json (made by make.py there, which says how): every
real fixture story as its source gave it, a copy with its link varied (tracking
parameters, http/https, m./www. hosts, fragment, trailing slash), a retitled
syndication copy, and distinct stories sharing a generic title. Each source's items
go through dedupe_feed and the store as a poll's do, with ``similar`` on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

from sqlalchemy import select

from aggregator.config import SourceConfig
from aggregator.dedupe import dedupe_feed
from aggregator.model import ParsedFeed, ParsedItem
from aggregator.similar import SimilarRule
from aggregator.store import Store
from aggregator.store.schema import item_versions
from tests.test_store import setup

DATA = Path(__file__).parent / "data" / "dedupe_labelled" / "items.json"
SOURCES = ("orig", "mirror", "portal", "digest-a", "digest-b")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_precision_and_recall(store: Store) -> None:
    labelled = json.loads(DATA.read_text(encoding="utf-8"))
    setup(store, *SOURCES)
    placed: dict[tuple[str, str], dict[str, str]] = {}  # (source, key) -> labelled item
    for source_id in SOURCES:
        mine = [x for x in labelled if x["source"] == source_id]
        source = SourceConfig(id=source_id, url="http://127.0.0.1/x.xml", categories=("news",))
        feed = ParsedFeed(
            None,
            None,
            tuple(
                ParsedItem(
                    guid=x["link"],
                    link=x["link"],
                    title=x["title"],
                    content=f"<p>{x['text']}</p>",
                    published=datetime.fromisoformat(x["published"]),
                )
                for x in mine
            ),
        )
        deduped = dedupe_feed(source, feed)
        assert len(deduped.items) == len(mine)
        for item, x in zip(deduped.items, mine, strict=True):
            placed[(source_id, item.key)] = x
        store.apply_items(
            source_id, deduped.items, NOW, similar=SimilarRule(timedelta(hours=48), 0.5)
        )
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(item_versions.c.source_id, item_versions.c.key, item_versions.c.item_id)
        ).all()
    entry_of = {(r.source_id, r.key): r.item_id for r in rows}
    assert set(entry_of) == set(placed)
    by_entry: dict[int, list[dict[str, str]]] = defaultdict(list)
    for where, x in placed.items():
        by_entry[entry_of[where]].append(x)
    merged_pairs = [(a, b) for xs in by_entry.values() for a, b in combinations(xs, 2)]
    false_merges = [(a, b) for a, b in merged_pairs if a["story"] != b["story"]]
    precision = 1 - len(false_merges) / len(merged_pairs) if merged_pairs else 1.0

    entry_by_story: dict[tuple[str, str], int] = {}
    for where, x in placed.items():
        entry_by_story[(x["story"], x["kind"])] = entry_of[where]
    stories = {x["story"] for x in labelled if x["kind"] == "orig"}

    def recall(kind: str) -> float:
        hits = sum(entry_by_story[(s, kind)] == entry_by_story[(s, "orig")] for s in stories)
        return hits / len(stories)

    link, retitled = recall("link"), recall("retitled")
    print(
        f"\nlabelled set: {len(labelled)} items, {len(stories)} stories; "
        f"precision {precision:.3f} ({len(merged_pairs)} merged pairs, "
        f"{len(false_merges)} false); recall link variants {link:.3f}, "
        f"retitled copies {retitled:.3f}"
    )
    assert false_merges == []
    assert link >= 0.98
    assert retitled >= 0.9
