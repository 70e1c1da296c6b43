"""status.html: from stored state alone, the same bytes on every instance (issue 17).

Two "instances" (two stores on one database, two output folders) write the
page; it must not depend on the wall clock or on which instance wrote it:
"as of" is the newest stored poll and the 30-day chart ends on that day. The
stored moments are from 2024 on purpose, so a page dated by the clock shows
another day. A poll saved by one instance makes the other rewrite its page
(the change counter), and a write with nothing changed replaces nothing.
Real SQLite file and real PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import html

from aggregator.config import Config, load_config
from aggregator.daemon.writer import OutputWriter
from aggregator.model import Category, PollStatus, SourceState
from aggregator.outputs import write_outputs
from aggregator.store import Store
from tests.test_health_feed import _item as item

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  #: far from today: the clock would show
ZONE = ZoneInfo("Asia/Shanghai")


def instance(tmp_path: Path, name: str, db_url: str) -> Config:
    """One instance's config: the same but for its output folder."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[aggregator]\ndatabase = "{db_url}"\noutput_dir = "{name}"\n'
        'base_url = "http://feeds.example.org/"\ntimezone = "Asia/Shanghai"\n'
        '[categories.news]\ntitle = "News"\n'
        '[[sources]]\nid = "a"\nurl = "http://127.0.0.1:9/a"\ncategories = ["news"]\n'
        '[[sources]]\nid = "b"\nurl = "http://127.0.0.1:9/b"\ncategories = ["news"]\n',
        encoding="utf-8",
    )
    return load_config(path)


def polled(source: str, at: datetime, **kw: object) -> SourceState:
    ok = {"status": PollStatus.OK, "last_success_at": at} if "error_kind" not in kw else {}
    return SourceState(
        source,
        last_poll_at=at,
        next_due_at=at + timedelta(hours=1),
        **{**ok, **kw},  # type: ignore[arg-type]
    )


def page(config: Config) -> bytes:
    return (config.aggregator.output_dir / "status.html").read_bytes()


@pytest.fixture
def stores(db_url: str) -> Iterator[list[Store]]:
    opened = [Store.open(db_url) for _ in range(2)]
    yield opened
    for s in opened:
        s.close()


def test_status_html_is_the_stored_moment_on_every_instance(
    tmp_path: Path, db_url: str, stores: list[Store]
) -> None:
    one, two = instance(tmp_path, "one", db_url), instance(tmp_path, "two", db_url)
    stores[0].sync_config(one.sources, [Category("news", "News")], T0)
    for day in range(3):
        stores[0].apply_items("a", [item(f"src:a:{day}", "a")], T0 + timedelta(days=day))
    last = T0 + timedelta(days=2, hours=3)  # 2024-05-03 19:00 in Shanghai
    stores[0].save_state(polled("a", last))
    stores[1].save_state(
        polled(
            "b",
            last - timedelta(hours=1),
            status=PollStatus.FAILED,
            error_kind="5xx",
            error_message="HTTP 503",
            consecutive_failures=1,
        )
    )
    write_outputs(one, stores[0], None)
    write_outputs(two, stores[1], None)

    assert page(one) == page(two)
    doc = html.document_fromstring(page(one))
    as_of = doc.find(".//header/p/time")
    assert as_of.get("datetime") == last.astimezone(ZONE).isoformat()
    assert as_of.text == "2024-05-03 19:00"
    bars = [t.text.split() for t in doc.findall(".//section[@id='chart-news']/svg/rect/title")]
    assert len(bars) == 30 and bars[-1][0] == "2024-05-03"
    assert [n for _, n in bars] == ["0"] * 27 + ["1", "1", "1"]
    assert doc.get_element_by_id("source-b").find(".//span").text == "failing"
    # nothing changed: nothing is replaced, on either instance
    assert write_outputs(one, stores[0], None).written == 0
    assert write_outputs(two, stores[1], None).written == 0


def test_a_poll_saved_by_one_instance_rewrites_every_instance_s_page(
    tmp_path: Path, db_url: str, stores: list[Store]
) -> None:
    one, two = instance(tmp_path, "one", db_url), instance(tmp_path, "two", db_url)
    stores[0].sync_config(one.sources, [Category("news", "News")], T0)
    stores[0].apply_items("a", [item("src:a:0", "a")], T0)
    stores[0].save_state(polled("a", T0))
    hours = itertools.count(0.0, 3600.0)  # the writers' clock: the page's spacing is over
    writers = [
        OutputWriter(stores[0], lambda: one, clock=lambda: next(hours)),
        OutputWriter(stores[1], lambda: two, clock=lambda: next(hours)),
    ]
    for writer in writers:
        writer.write_all()
    before = page(one)
    assert before == page(two)

    # the second instance polls b: no item changes, only its state (last and next poll)
    later = T0 + timedelta(minutes=30)
    stores[1].save_state(polled("b", later))
    for writer in writers:
        writer.flush()

    assert page(one) == page(two) != before
    doc = html.document_fromstring(page(one))
    assert doc.find(".//header/p/time").get("datetime") == later.astimezone(ZONE).isoformat()
    cells = doc.get_element_by_id("source-b").findall("td")
    assert cells[2].find("time").get("datetime") == later.astimezone(ZONE).isoformat()


def test_the_daemon_spaces_status_html_out_but_never_leaves_it_behind(
    tmp_path: Path, sqlite_url: str
) -> None:
    """After a render of d seconds the next waits 20 d (it reads every source's row, and
    every saved poll asks for it); what is owed is written once that has passed, even
    with nothing new by then. The clock is the writer's own, moved by hand."""
    config = instance(tmp_path, "one", sqlite_url)
    store = Store.open(sqlite_url)
    try:
        store.sync_config(config.sources, [Category("news", "News")], T0)
        store.save_state(polled("a", T0))
        clock = [0.0]
        writer = OutputWriter(store, lambda: config, clock=lambda: clock[0])
        writer.write_all()
        first = page(config)

        later = T0 + timedelta(minutes=10)
        store.apply_items("a", [item("src:a:1", "a")], later)
        store.save_state(polled("b", later))
        writer.flush()  # no time has passed since a render that took some: feeds only
        assert b"src:a:1" in (config.aggregator.output_dir / "news.atom").read_bytes()
        assert page(config) == first

        clock[0] = 3600.0
        writer.flush()  # nothing new, but the page is owed
        doc = html.document_fromstring(page(config))
        assert doc.find(".//header/p/time").get("datetime") == later.astimezone(ZONE).isoformat()
    finally:
        store.close()
