"""Which stored items the join rules would have made one: the stories stored twice before
canonical links joined them (migration 0010), replayed in the order they arrived (pure).

    for each item, oldest first (as if it were arriving now, joins.py's rules):
      infoCode key            -> never joins (its own key decides); others may join it
      shares a canonical link -> joins the oldest group with that link that none of its
                                 sources carries; where several do, the one whose titles
                                 match one of its own
      else                    -> a group of its own

Each group's survivor is its oldest item: the one readers saw first, whose id stays.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A stored item as the replay sees it: its versions' sources, links and titles."""

    item_id: int
    key: str
    sources: frozenset[str]
    canons: frozenset[str]  #: its versions' canonical links
    titles: frozenset[str]  #: its versions' normalized titles


def survivors(stored: Iterable[StoredItem]) -> dict[int, int]:
    """Item id -> the id of the older item it is one story with (only those that join one)."""
    root: dict[int, int] = {}
    carried: dict[int, set[str]] = {}  #: group -> the sources its items carry
    titled: dict[int, set[str]] = {}  #: group -> its items' normalized titles
    by_canon: dict[str, list[int]] = defaultdict(list)  #: canonical link -> groups, oldest first
    for item in sorted(stored, key=lambda s: s.item_id):
        group = item.item_id
        if not item.key.startswith("ic:"):
            groups = sorted({g for c in item.canons for g in by_canon.get(c, ())})
            groups = [g for g in groups if not carried[g] & item.sources]
            if len(groups) > 1:  # one link, several stories: the title tells
                groups = [g for g in groups if titled[g] & item.titles]
            if groups:
                group = groups[0]
        root[item.item_id] = group
        carried.setdefault(group, set()).update(item.sources)
        titled.setdefault(group, set()).update(item.titles)
        for canon in item.canons:
            if group not in by_canon[canon]:
                by_canon[canon].append(group)
    return {item_id: group for item_id, group in root.items() if item_id != group}
