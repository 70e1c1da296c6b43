"""The merge policy (pure): which version's title and body win, and what is combined."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aggregator.model import Item
from aggregator.store.merge import merge_versions, merged_hash

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))


def version(source: str, **kw: object) -> Item:
    base: dict[str, object] = {
        "key": "ic:NW1",
        "source_id": source,
        "priority": 0,
        "title": f"title from {source}",
        "link": f"https://{source}.example/1",
        "guid": None,
        "infocode": "NW1",
        "content_raw": f"<p>{source}</p>",
        "content_html": f"<p>{source}</p>",
        "summary_html": None,
        "author": f"author {source}",
        "published": T0,
        "updated": T0,
        "categories": (f"cat-{source}",),
        "content_hash": f"h-{source}",
    }
    base.update(kw)
    return Item(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("versions", "winner"),
    [
        # priority wins over a longer body and an earlier source id
        ([version("a", content_raw="x" * 100), version("b", priority=1, content_raw="x")], "b"),
        ([version("a", priority=-1), version("b")], "b"),
        # equal priority: the longest body
        ([version("a", content_raw="short"), version("b", content_raw="much longer")], "b"),
        # no body: the summary's length counts
        (
            [
                version("a", content_raw=None, content_html=None, summary_html="sum"),
                version("b", content_raw=None, content_html=None, summary_html="longer sum"),
            ],
            "b",
        ),
        # a body beats a shorter summary
        ([version("a", content_raw=None, content_html=None, summary_html="s"), version("b")], "b"),
        # all equal: the source id first in sort order
        ([version("b", content_raw="same"), version("a", content_raw="same")], "a"),
        ([version("z"), version("y"), version("x")], "x"),
    ],
)
def test_winner(versions: list[Item], winner: str) -> None:
    merged = merge_versions(versions)
    won = next(v for v in versions if v.source_id == winner)
    assert merged.winner == winner
    assert (merged.title, merged.content_raw, merged.content_html, merged.summary_html) == (
        won.title,
        won.content_raw,
        won.content_html,
        won.summary_html,
    )
    assert (merged.link, merged.author, merged.updated) == (won.link, won.author, won.updated)


@pytest.mark.parametrize(
    ("dates", "earliest"),
    [
        ([T0, T0 - timedelta(hours=1)], T0 - timedelta(hours=1)),
        ([T0, None], T0),
        ([None, None], None),
        # the same instant in another zone is the same time
        ([T0.astimezone(CST), T0 + timedelta(seconds=1)], T0),
    ],
)
def test_published_is_the_earliest(dates: list[datetime | None], earliest: datetime | None) -> None:
    versions = [version(f"s{n}", published=d) for n, d in enumerate(dates)]
    assert merge_versions(versions).published == earliest


def test_categories_are_the_union() -> None:
    merged = merge_versions(
        [version("a", categories=("news", "kejiribao")), version("b", categories=("news", "tech"))]
    )
    assert merged.categories == ("kejiribao", "news", "tech")


def test_link_and_author_fall_back_in_precedence_order() -> None:
    merged = merge_versions(
        [
            version("a", priority=2, link=None, author=None),
            version("c", priority=1, link="https://c/1", author=None),
            version("b", priority=1, link="https://b/1", author="B"),
        ]
    )
    assert merged.winner == "a"
    assert (merged.link, merged.author) == ("https://b/1", "B")


def test_infocode_from_any_version() -> None:
    merged = merge_versions([version("a", infocode=None), version("b", infocode="NW1")])
    assert merged.infocode == "NW1"


def test_no_versions_is_an_error() -> None:
    with pytest.raises(ValueError):
        merge_versions([])


VARIED = [
    version("a", content_raw="x" * 10, published=T0, categories=("one",)),
    version("b", content_raw="x" * 30, published=T0 + timedelta(hours=2), categories=("two",)),
    version("c", priority=1, content_raw="x", published=None, link=None, categories=("one", "3")),
    version("d", priority=1, content_raw="x", published=T0 - timedelta(days=1), author=None),
]


@pytest.mark.parametrize("count", [2, 3, 4])
def test_order_never_matters(count: int) -> None:
    for chosen in itertools.combinations(VARIED, count):
        results = {merge_versions(list(p)) for p in itertools.permutations(chosen)}
        assert len(results) == 1, chosen


def test_hash_follows_what_readers_see() -> None:
    merged = merge_versions([version("a")])
    same = merged_hash(merged, T0)
    assert merged_hash(merged, T0.astimezone(CST)) == same
    assert merged_hash(replace(merged, winner="other", updated=T0 + timedelta(1)), T0) == same
    for change in (
        {"title": "new"},
        {"link": "https://elsewhere/"},
        {"content_html": "<p>new</p>"},
        {"summary_html": "s"},
        {"author": "someone"},
        {"categories": ("cat-a", "more")},
    ):
        assert merged_hash(replace(merged, **change), T0) != same, change  # type: ignore[arg-type]
    assert merged_hash(merged, T0 + timedelta(seconds=1)) != same
