"""The records the store hands out; never an ORM row."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``apply_items`` did, counted over the source's own versions."""

    new: int = 0  #: versions this source had not carried before
    updated: int = 0  #: versions whose content changed
    unchanged: int = 0  #: versions seen again as they were
    tombstoned: int = 0  #: items skipped because they were pruned earlier
    future_dated: int = 0  #: items dated more than a day ahead, dated when first seen instead
    dropped: int = 0  #: new or changed versions whose item the rules drop (not in new/updated)
    changed_categories: frozenset[str] = field(default_factory=frozenset)
    changed_keys: frozenset[str] = field(default_factory=frozenset)  #: merged items written


@dataclass(frozen=True, slots=True)
class Changes:
    """Which category feeds changed after a counter value another instance saw."""

    counter: int  #: the current value: pass it to the next ``changed_since``
    categories: frozenset[str]
