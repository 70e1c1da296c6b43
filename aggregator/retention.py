"""Retention: ``retention = "90d"`` prunes items older than that which no feed shows.

The store leaves a tombstone for every pruned key, so a source that still
serves an old item does not bring it back. Run by the daemon (at start, then
hourly) and by ``aggregator poll`` after its polls.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from aggregator.config import Config
from aggregator.store import Store

log = logging.getLogger("aggregator.retention")


def prune_expired(config: Config, store: Store, now: datetime) -> frozenset[str]:
    """Prune what ``retention`` lets go; returns the categories whose counts changed.

    An item stays, whatever its age, while it is among the newest
    ``entries_per_feed`` of any of its categories or of ``all.atom``.
    """
    retention = config.aggregator.retention
    if retention is None:
        return frozenset()
    started = time.monotonic()
    before = store.change_counter()
    pruned = store.prune(now - retention, config.aggregator.entries_per_feed, now=now)
    if not pruned:
        return frozenset()
    changed = store.changed_since(before).categories
    log.info(
        "prune items=%d older_than=%s categories=%d duration=%.3f",
        pruned,
        (now - retention).isoformat(timespec="seconds"),
        len(changed),
        time.monotonic() - started,
    )
    return changed
