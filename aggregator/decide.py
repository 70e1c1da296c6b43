"""Which items of one document to store, and which bodies to ask for (pure).

Records in, decisions out: the document's keyed Items and the versions the
store holds go in, one ``ItemDecision`` per item to store comes out. No
network and no database here, so every case is a row in a table
(tests/test_decide.py); ``update.py`` does what the decisions say.

    stored version   document             decision
    none             any                  store (NEW)
    same hash        any                  skip (counted unchanged)
    same hash        body still pending   store (PENDING), ask for the body again
    other hash       well-formed          store (CHANGED)
    any              ill-formed (lenient) skip: a cut-short item must not replace a whole one

An item to store on a source with detail requests asks for its body while the
per-poll budget lasts; past it, the body waits for the next poll (DEFERRED).
Until a body comes, the item keeps the body the store already holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from aggregator.model import Item, KnownVersion


class Change(StrEnum):
    """Why an item is stored."""

    NEW = "new"  #: this source never carried it
    CHANGED = "changed"  #: what readers see differs from the stored version
    PENDING = "pending"  #: the same, but its body is still to be asked for


class Detail(StrEnum):
    """What to do about an item's detail request."""

    NONE = "none"  #: the source has no detail requests, or the item no detail URL
    FETCH = "fetch"  #: ask for the body now
    DEFERRED = "deferred"  #: the per-poll budget is spent: ask at the next poll


@dataclass(frozen=True, slots=True)
class ItemDecision:
    """One item to store, and how its body is completed first."""

    item: Item  #: as the document gave it
    change: Change
    detail: Detail
    kept_raw: str | None = None  #: the stored body, kept while no new one comes
    kept_html: str | None = None

    @property
    def holds_body(self) -> bool:
        """The store holds a body for it (the raw one only where a post uses it)."""
        return bool(self.kept_raw or self.kept_html)

    def resolve(self, body: str | None) -> Item:
        """The version to store, given the body the detail request gave (None: none came)."""
        if self.detail is Detail.NONE:
            return self.item
        from aggregator.dedupe import with_detail  # nh3: loaded only by a poll that stores

        item = with_detail(self.item, body)
        if body is None and self.holds_body:
            item = replace(item, content_raw=self.kept_raw, content_html=self.kept_html)
        return item


@dataclass(frozen=True, slots=True)
class Decisions:
    """Everything decided about one document."""

    store: tuple[ItemDecision, ...]  #: in document order
    unchanged: int  #: items skipped as the store holds them
    warnings: tuple[str, ...]


def decide(
    source_id: str,
    items: Iterable[Item],
    known: Mapping[str, KnownVersion],
    *,
    details: bool,
    budget: int,
    lenient: bool = False,
) -> Decisions:
    """Decide every item of one document, by the table in the module docstring.

    ``details``: the source asks for each item's body with one more request;
    ``budget``: how many such requests this poll may make; ``lenient``: the
    document was read past an XML error.
    """
    store: list[ItemDecision] = []
    warnings: list[str] = []
    unchanged = kept_as_stored = 0
    for item in items:
        before = known.get(item.key)
        if before is not None and lenient:
            unchanged += 1
            kept_as_stored += before.content_hash != item.content_hash
            continue
        pending = details and before is not None and before.detail_pending
        if before is not None and before.content_hash == item.content_hash and not pending:
            unchanged += 1
            continue
        change = Change.NEW if before is None else Change.PENDING
        if before is not None and before.content_hash != item.content_hash:
            change = Change.CHANGED
        detail = Detail.NONE
        if details and item.detail_url:
            detail = Detail.FETCH if budget > 0 else Detail.DEFERRED
            budget -= detail is Detail.FETCH
            if detail is Detail.DEFERRED:
                warnings.append(f"{source_id}: detail budget spent; {item.key} waits for next poll")
        kept = before if before is not None and detail is not Detail.NONE else None
        store.append(
            ItemDecision(
                item,
                change,
                detail,
                kept_raw=kept.content_raw if kept else None,
                kept_html=kept.content_html if kept else None,
            )
        )
    if kept_as_stored:
        warnings.append(
            f"{source_id}: ill-formed document; {kept_as_stored} stored items "
            "that differ in it were kept as they were"
        )
    return Decisions(tuple(store), unchanged, tuple(warnings))
