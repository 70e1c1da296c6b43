"""health.atom (and .rss, .json) and status.html: admins learn that a source broke (issue 17).

One entry per change of a source's condition, never per poll: a source that
fails three times and then recovers leaves exactly two entries. Polled
through the CLI against the loopback server on SQLite and PostgreSQL; the
pure decisions (sourcewatch.py) are tested with tables.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree, html

from aggregator.model import Condition, Item, PollStatus, SourceState
from aggregator.sourcewatch import change, condition, usual_gap
from aggregator.store import Store
from tests.finews_api import aggregator
from tests.loopback import LoopbackServer
from tests.test_write_formats import rss, rss_problems

ATOM = "{http://www.w3.org/2005/Atom}"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
HOURS = [T0 + timedelta(hours=n) for n in range(4)]  #: four arrivals an hour apart


# ------------------------------------------------------------------ deciding (pure)


def _state(status: PollStatus, **kw: object) -> SourceState:
    return SourceState("s", status=status, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "arrivals", "now", "expected"),
    [
        (_state(PollStatus.OK), HOURS, HOURS[-1] + timedelta(hours=2), Condition.OK),
        (_state(PollStatus.OK), HOURS, HOURS[-1] + timedelta(hours=3, seconds=1), Condition.SILENT),
        (_state(PollStatus.UNCHANGED), HOURS, HOURS[-1] + timedelta(days=9), Condition.SILENT),
        (_state(PollStatus.OK), HOURS[:3], HOURS[-1] + timedelta(days=9), Condition.OK),
        (_state(PollStatus.OK), [T0] * 4, T0 + timedelta(days=9), Condition.OK),
        (_state(PollStatus.FAILED, error_kind="5xx"), HOURS, T0, Condition.FAILING),
        (_state(PollStatus.FAILED, disabled_reason="410 Gone"), [], T0, Condition.DISABLED),
    ],
)
def test_condition(
    state: SourceState, arrivals: list[datetime], now: datetime, expected: Condition
) -> None:
    assert condition(state, arrivals, now) == expected


def test_usual_gap_needs_four_distinct_arrivals() -> None:
    assert usual_gap(HOURS) == timedelta(hours=1)
    assert usual_gap(HOURS[:3]) is None
    assert usual_gap([T0, T0, T0, T0]) is None


def test_change_is_an_event_only_when_the_condition_changes() -> None:
    failed = _state(PollStatus.FAILED, error_kind="5xx", error_message="HTTP 503")
    assert change(Condition.FAILING, Condition.FAILING, failed, [], T0) is None
    assert change(Condition.OK, Condition.OK, _state(PollStatus.OK), [], T0) is None
    event = change(Condition.OK, Condition.FAILING, failed, [], T0)
    assert event is not None and (event.kind, event.message) == ("failing", "5xx: HTTP 503")
    back = change(Condition.FAILING, Condition.OK, _state(PollStatus.OK), [], T0)
    assert back is not None and back.kind == "recovered"
    quiet = change(Condition.OK, Condition.SILENT, _state(PollStatus.OK), HOURS, T0 + timedelta(1))
    assert quiet is not None and quiet.kind == "silent"
    assert quiet.message == "no new item for 21h (usually one every 1h)"
    # ids: stable, and distinct per event
    assert event.key != back.key
    assert event.key == change(Condition.OK, Condition.FAILING, failed, [], T0).key  # type: ignore[union-attr]


# ------------------------------------------------------------------ through the CLI


def write_config(tmp_path: Path, base: str, db_url: str) -> Path:
    config = tmp_path / "aggregator.toml"
    config.write_text(
        f"""
[aggregator]
database = "{db_url}"
output_dir = "public"
base_url = "http://127.0.0.1:8080/"
timezone = "Asia/Shanghai"

[categories.news]
title = "News"

[[sources]]
id = "flaky"
url = "{base}/flaky.xml"
categories = ["news"]

[[sources]]
id = "steady"
url = "{base}/steady.xml"
categories = ["news"]
""",
        encoding="utf-8",
    )
    return config


def health_entries(public: Path) -> list[tuple[str, str, str]]:
    """(id, title, content) of each health.atom entry, newest first."""
    root = etree.fromstring((public / "health.atom").read_bytes())
    return [
        (e.findtext(f"{ATOM}id"), e.findtext(f"{ATOM}title"), e.findtext(f"{ATOM}content"))
        for e in root.iterfind(f"{ATOM}entry")
    ]


def test_failing_then_recovering_leaves_two_entries(
    tmp_path: Path, loopback: LoopbackServer, db_url: str
) -> None:
    config = write_config(tmp_path, loopback.url, db_url)
    public = tmp_path / "public"
    loopback.add("/flaky.xml", rss([(1, "one")]))
    loopback.add("/steady.xml", rss([(2, "two")]))
    assert aggregator("poll", "-c", str(config)).returncode == 0
    assert health_entries(public) == []  # a first good poll is no news

    loopback.add("/flaky.xml", "down", status=503)
    for _ in range(3):  # failing three times is one change
        assert aggregator("poll", "-c", str(config)).returncode == 1
    (failing,) = health_entries(public)
    assert failing[1] == "flaky is failing"
    assert "5xx" in failing[2] and "503" in failing[2]

    loopback.add("/flaky.xml", rss([(1, "one")]))
    assert aggregator("poll", "-c", str(config)).returncode == 0
    assert aggregator("poll", "-c", str(config)).returncode == 0
    entries = health_entries(public)
    assert [title for _, title, _ in entries] == ["flaky recovered", "flaky is failing"]
    assert entries[1] == failing  # the first entry kept its id and text
    # the other formats list the same events, with the same ids, in the same order
    rss_doc = etree.fromstring((public / "health.rss").read_bytes())
    assert [g.text for g in rss_doc.iterfind("channel/item/guid")] == [e[0] for e in entries]
    assert rss_problems((public / "health.rss").read_bytes()) == []
    doc = json.loads((public / "health.json").read_bytes())
    assert [i["id"] for i in doc["items"]] == [e[0] for e in entries]
    link = doc["items"][0]["url"]
    assert link == "http://127.0.0.1:8080/status.html#source-flaky"

    status = html.document_fromstring((public / "status.html").read_bytes())
    flaky = status.get_element_by_id("source-flaky")
    assert flaky.find(".//span").text == "ok"
    steady = status.get_element_by_id("source-steady")
    assert steady.find(".//span").text == "ok"
    assert steady.findall("td")[5].text == "1"  # items
    svg = status.find(".//section[@id='chart-news']/svg")
    assert svg is not None and len(svg.findall("rect")) == 30


def test_a_410_disables_and_says_so(tmp_path: Path, loopback: LoopbackServer) -> None:
    config = write_config(tmp_path, loopback.url, f"sqlite:///{tmp_path}/db.sqlite")
    loopback.add("/flaky.xml", "gone", status=410)
    loopback.add("/steady.xml", rss([(2, "two")]))
    aggregator("poll", "-c", str(config))
    public = tmp_path / "public"
    titles = [title for _, title, _ in health_entries(public)]
    assert titles == ["flaky is disabled (410 Gone)"]
    status = html.document_fromstring((public / "status.html").read_bytes())
    row = status.get_element_by_id("source-flaky")
    assert row.find(".//span").text == "disabled"


def _item(key: str, source: str) -> Item:
    return Item(
        key=key,
        source_id=source,
        priority=0,
        title=key,
        link=f"https://example.org/{key}",
        guid=key,
        infocode=None,
        content_raw=None,
        content_html=f"<p>{key}</p>",
        summary_html=None,
        author=None,
        published=T0,
        updated=T0,
        categories=("news",),
        content_hash=key,
    )


def test_a_silent_source_is_reported_once(store: Store) -> None:
    for n, moment in enumerate(HOURS):
        store.apply_items("s", [_item(f"src:s:{n}", "s")], moment)
    soon = HOURS[-1] + timedelta(hours=2)
    store.save_state(SourceState("s", status=PollStatus.UNCHANGED, last_poll_at=soon))
    assert store.health_events(10) == []
    late = HOURS[-1] + timedelta(hours=4)
    before = store.change_counter()
    counters = []
    for minutes in (0, 10, 20):  # polled again and again while silent: one event
        store.save_state(
            SourceState(
                "s", status=PollStatus.UNCHANGED, last_poll_at=late + timedelta(minutes=minutes)
            )
        )
        counters.append(store.change_counter())
    (event,) = store.health_events(10)
    assert (event.source_id, event.kind, event.at) == ("s", "silent", late)
    # the health feeds are announced once; every saved poll announces the status page
    assert store.changed_since(before).categories == {"health", "status"}
    assert store.changed_since(counters[0]).categories == {"status"}
    assert counters == sorted(set(counters))
    # a new item ends the silence
    store.apply_items("s", [_item("src:s:new", "s")], late + timedelta(hours=1))
    store.save_state(SourceState("s", status=PollStatus.OK, last_poll_at=late + timedelta(hours=1)))
    assert [e.kind for e in store.health_events(10)] == ["recovered", "silent"]
    assert store.conditions()["s"][0] == "ok"
