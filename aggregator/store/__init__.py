"""The store: the only code that knows SQLAlchemy (tables, queries, migrations).

store.py       Store, the facade: one transaction per method, errors -> StoreError
engine.py      URLs, SQLite pragmas and BEGIN IMMEDIATE, migrations under a lock
schema.py      tables; migrations/ builds the same
sources.py     per-source state, leases
categories.py  categories, change counters, a post's category
items.py       apply_items: versions in, merged items out
group.py       group commit: applies made at once share one transaction
versions.py    one source's versions: stored, same again, written
bodies.py      each body once, named by hash
merge.py       the merge policy (pure)
feeds.py       entries, newest first
prune.py       retention and tombstones
"""

from aggregator.store.merge import Merged, merge_versions
from aggregator.store.records import ApplyResult, Changes
from aggregator.store.store import Store

__all__ = [
    "ApplyResult",
    "Changes",
    "Merged",
    "Store",
    "merge_versions",
]
