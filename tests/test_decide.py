"""The decider: stored versions + a document's Items -> what to store, which bodies to ask for.

Pure tables: no network, no database (the doing is tested end to end in
test_parse_jsonapi.py and test_robust.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.decide import Change, Detail, ItemDecision, decide
from aggregator.model import Item, KnownVersion

WHEN = datetime(2022, 5, 25, 8, 53, 43, tzinfo=UTC)


def item(key: str, digest: str = "h1", detail_url: str | None = None) -> Item:
    return Item(
        key=key,
        source_id="s1",
        priority=0,
        title=f"title {key}",
        link=f"http://127.0.0.1/{key}",
        guid=None,
        infocode=None,
        content_raw="<p>list text</p>",
        content_html="<p>list text</p>",
        summary_html=None,
        author=None,
        published=WHEN,
        updated=WHEN,
        categories=("news",),
        content_hash=digest,
        detail_url=detail_url,
        detail_pending=detail_url is not None,
    )


def known(
    key: str, digest: str = "h1", pending: bool = False, raw: str | None = None
) -> KnownVersion:
    return KnownVersion(key, digest, pending, raw, raw)


D = "http://127.0.0.1/detail"

# (case, stored version, item, details, budget, lenient) -> (change, detail); None: skipped
CASES = [
    ("new item", None, item("a"), False, 0, False, (Change.NEW, Detail.NONE)),
    ("same hash", known("a"), item("a"), False, 0, False, None),
    ("changed hash", known("a", "h0"), item("a"), False, 0, False, (Change.CHANGED, Detail.NONE)),
    ("lenient keeps a changed stored item", known("a", "h0"), item("a"), False, 0, True, None),
    ("lenient keeps a same stored item", known("a"), item("a"), False, 0, True, None),
    ("lenient still adds a new item", None, item("a"), False, 0, True, (Change.NEW, Detail.NONE)),
    ("new with detail", None, item("a", detail_url=D), True, 5, False, (Change.NEW, Detail.FETCH)),
    ("new, budget spent", None, item("a", detail_url=D), True, 0, False,
     (Change.NEW, Detail.DEFERRED)),
    ("same, body pending", known("a", pending=True), item("a", detail_url=D), True, 5, False,
     (Change.PENDING, Detail.FETCH)),
    ("same, body got", known("a"), item("a", detail_url=D), True, 5, False, None),
    ("pending but source has no details", known("a", pending=True), item("a"), False, 5, False,
     None),
    ("details but item has no detail url", None, item("a"), True, 5, False,
     (Change.NEW, Detail.NONE)),
    ("changed with detail", known("a", "h0"), item("a", detail_url=D), True, 1, False,
     (Change.CHANGED, Detail.FETCH)),
    ("lenient, body pending", known("a", "h0", pending=True), item("a", detail_url=D), True, 5,
     True, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("stored", "it", "details", "budget", "lenient", "expect"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide_one_item(
    stored: KnownVersion | None,
    it: Item,
    details: bool,
    budget: int,
    lenient: bool,
    expect: tuple[Change, Detail] | None,
) -> None:
    versions = {stored.key: stored} if stored else {}
    got = decide("s1", [it], versions, details=details, budget=budget, lenient=lenient)
    if expect is None:
        assert got.store == () and got.unchanged == 1
    else:
        assert [(d.change, d.detail) for d in got.store] == [expect]
        assert got.store[0].item is it and got.unchanged == 0


def test_budget_counts_only_requests_it_allows() -> None:
    items = [item(k, detail_url=f"{D}/{k}") for k in "abcd"]
    got = decide("s1", items, {"b": known("b")}, details=True, budget=2)
    # b is the same and has its body: no request, so a, c get the two; d waits
    assert [(d.item.key, d.detail) for d in got.store] == [
        ("a", Detail.FETCH),
        ("c", Detail.FETCH),
        ("d", Detail.DEFERRED),
    ]
    assert got.unchanged == 1
    assert got.warnings == ("s1: detail budget spent; d waits for next poll",)


def test_lenient_warns_with_the_count_of_kept_items() -> None:
    items = [item("a", "new"), item("b", "new"), item("c")]
    stored = {k: known(k, "old") for k in "ab"} | {"c": known("c")}
    got = decide("s1", items, stored, details=False, budget=0, lenient=True)
    assert got.store == () and got.unchanged == 3
    assert got.warnings == (
        "s1: ill-formed document; 2 stored items that differ in it were kept as they were",
    )


# (case, decision, body) -> (content_raw, detail_pending)
RESOLVE = [
    ("no detail: as given", ItemDecision(item("a"), Change.NEW, Detail.NONE), "<p>x</p>",
     ("<p>list text</p>", False)),
    ("body came", ItemDecision(item("a", detail_url=D), Change.NEW, Detail.FETCH), "<p>full</p>",
     ("<p>full</p>", False)),
    ("no body, nothing stored: the list's text, pending",
     ItemDecision(item("a", detail_url=D), Change.NEW, Detail.FETCH), None,
     ("<p>list text</p>", True)),
    ("no body: the stored body kept, pending",
     ItemDecision(item("a", detail_url=D), Change.PENDING, Detail.DEFERRED, "<p>old</p>",
                  "<p>old</p>"), None, ("<p>old</p>", True)),
    ("body came over a stored one",
     ItemDecision(item("a", detail_url=D), Change.CHANGED, Detail.FETCH, "<p>old</p>",
                  "<p>old</p>"), "<p>new</p>", ("<p>new</p>", False)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("decision", "body", "expect"), [c[1:] for c in RESOLVE], ids=[c[0] for c in RESOLVE]
)
def test_resolve(decision: ItemDecision, body: str | None, expect: tuple[str, bool]) -> None:
    got = decision.resolve(body)
    assert (got.content_raw, got.detail_pending) == expect
    assert got.content_html == expect[0]  # sanitized: these bodies are already clean


def test_decisions_are_frozen() -> None:
    got = decide("s1", [item("a")], {}, details=False, budget=0)
    with pytest.raises(AttributeError):
        got.store[0].change = Change.CHANGED  # type: ignore[misc]
