"""The daemon writes a file that failed again at its next flush, changed or not (issue 17).

Before, a file whose render failed waited for its category's next change. A
real SQLite store and output folder; the fault is a page renderer that
raises while told to (as an entry that breaks it would), and the writer's
clock is moved by hand: a file failing again and again is tried after 2, 4
... s, not at every flush.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator import outputs
from aggregator.daemon.writer import OutputWriter, retry_delay
from aggregator.model import Category
from aggregator.store import Store
from tests.test_status_page import T0, instance, item


def test_retry_delay_grows_from_the_next_flush() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [0.0, 2.0, 4.0, 8.0]
    assert retry_delay(40) == 300.0


def test_a_file_that_failed_is_written_at_the_next_flush(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = instance(tmp_path, "one", sqlite_url)
    page = config.aggregator.output_dir / "news.html"
    render = outputs.render_page
    broken = [False]
    tries: list[str] = []

    def render_page(snapshot: Any, *args: Any) -> bytes:
        if snapshot.feed.name == "news":
            tries.append("news")
            if broken[0]:
                raise ValueError("an entry this renderer cannot take")
        return render(snapshot, *args)

    monkeypatch.setattr(outputs, "render_page", render_page)
    store = Store.open(sqlite_url)
    try:
        store.sync_config(config.sources, [Category("news", "News")], T0)
        store.apply_items("a", [item("src:a:0", "a")], T0)
        clock = [0.0]
        writer = OutputWriter(store, lambda: config, clock=lambda: clock[0])
        writer.write_all()

        broken[0] = True
        store.apply_items("a", [item("src:a:1", "a")], T0 + timedelta(hours=1))
        writer.flush()
        assert b"src:a:1" in (config.aggregator.output_dir / "news.atom").read_bytes()
        assert b"src:a:1" not in page.read_bytes()  # failed: the old page stays

        broken[0] = False
        writer.flush()  # nothing changed since: the failed page is written all the same
        assert b"src:a:1" in page.read_bytes()

        # failing again and again: tried at the next flush, then 2 s later, not every flush
        broken[0] = True
        store.apply_items("a", [item("src:a:2", "a")], T0 + timedelta(hours=2))
        writer.flush()
        writer.flush()
        tried = len(tries)
        writer.flush()
        assert len(tries) == tried
        clock[0] += 2.0
        broken[0] = False
        writer.flush()
        assert len(tries) == tried + 1 and b"src:a:2" in page.read_bytes()
        writer.flush()  # written: nothing more to try
        assert len(tries) == tried + 1
    finally:
        store.close()
