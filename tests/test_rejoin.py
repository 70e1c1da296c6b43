"""Which stored items are one story (rejoin.survivors, pure): a table."""

from __future__ import annotations

import pytest

from aggregator.rejoin import StoredItem, survivors


def stored(item_id: int, key: str, sources: str, canons: str, titles: str = "") -> StoredItem:
    return StoredItem(
        item_id,
        key,
        frozenset(sources.split()),
        frozenset(canons.split()),
        frozenset(titles.split()),
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # two sources, one link: the later joins the older
        ([stored(1, "k1", "a", "x"), stored(2, "k2", "b", "x")], {2: 1}),
        # and a third joins the group, whichever of the two it shares the link with
        (
            [stored(1, "k1", "a", "x"), stored(2, "k2", "b", "x y"), stored(3, "k3", "c", "y")],
            {2: 1, 3: 1},
        ),
        # one source, one link: never one story
        ([stored(1, "k1", "a", "x"), stored(2, "k2", "a", "x")], {}),
        # the group already carries the source
        ([stored(1, "k1", "a", "x"), stored(2, "k2", "b", "x"), stored(3, "k3", "b", "x")], {2: 1}),
        # an infoCode item never joins another, but may be joined
        ([stored(1, "k1", "a", "x"), stored(2, "ic:NW2", "b", "x")], {}),
        ([stored(1, "ic:NW1", "a", "x"), stored(2, "k2", "b", "x")], {2: 1}),
        # one link, several stories: the title picks, else none
        (
            [
                stored(1, "k1", "a", "x", "alpha"),
                stored(2, "k2", "a", "x", "beta"),
                stored(3, "k3", "b", "x", "beta"),
                stored(4, "k4", "c", "x", "gamma"),
            ],
            {3: 2},
        ),
    ],
)
def test_survivors(items: list[StoredItem], expected: dict[int, int]) -> None:
    assert survivors(items) == expected
    assert survivors(reversed(items)) == expected  # the order of the rows does not matter
