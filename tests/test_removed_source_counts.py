"""A source gone from the config: its items leave the index's counts and the status
chart, as they leave the feeds (issue 17).

The categories rows keep counting every item filed under them (counts.py);
reading them takes off the items no configured source carries any more, and
the newest ``updated`` becomes the newest of the rest. Real SQLite file and
real PostgreSQL; undone, the index says 5 entries where the feed holds 2.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from lxml import html

from aggregator.config import load_config
from aggregator.model import Category, PollStatus, SourceState
from aggregator.outputs import write_outputs
from aggregator.store import Store
from tests.test_status_page import T0, instance, item


def test_a_removed_source_s_items_leave_the_counts(
    tmp_path: Path, db_url: str, store: Store
) -> None:
    both = instance(tmp_path, "public", db_url)
    news = [Category("news", "News")]
    store.sync_config(both.sources, news, T0)
    a_newest = T0 + timedelta(hours=2)
    store.apply_items(
        "a",
        [replace(item(f"src:a:{n}", "a"), updated=T0 + timedelta(hours=n + 1)) for n in range(2)],
        T0,
    )
    store.apply_items(
        "b",
        [replace(item(f"src:b:{n}", "b"), updated=T0 + timedelta(days=1)) for n in range(3)],
        T0 + timedelta(days=1),
    )
    polled = T0 + timedelta(days=1)
    for sid in ("a", "b"):
        store.save_state(SourceState(sid, status=PollStatus.OK, last_poll_at=polled))
    (info,) = store.categories()
    assert (info.entry_count, info.updated) == (5, T0 + timedelta(days=1))

    # b leaves the config
    config_a = tmp_path / "a.toml"
    config_a.write_text(
        both.path.read_text(encoding="utf-8").split('[[sources]]\nid = "b"')[0], encoding="utf-8"
    )
    only_a = load_config(config_a)
    assert [s.id for s in only_a.sources] == ["a"]
    store.sync_config(only_a.sources, news, T0 + timedelta(days=1))
    (info,) = store.categories()
    assert (info.entry_count, info.updated) == (2, a_newest)
    assert len(store.entries("news", None)) == 2

    write_outputs(only_a, store, None)
    out = only_a.aggregator.output_dir
    index = html.document_fromstring((out / "index.html").read_bytes())
    assert [td.text for td in index.iterfind(".//td[@class='n']")] == ["2"]
    status = html.document_fromstring((out / "status.html").read_bytes())
    bars = status.findall(".//section[@id='chart-news']/svg/rect/title")
    assert sum(int(t.text.split()[1]) for t in bars) == 2

    # back in the config: counted again
    store.sync_config(both.sources, news, T0 + timedelta(days=2))
    (info,) = store.categories()
    assert (info.entry_count, info.updated) == (5, T0 + timedelta(days=1))
