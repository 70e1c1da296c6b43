"""Article pages of ``fulltext`` sources: their validators, and the versions to read again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from aggregator.model import DetailPage, Item
from aggregator.store.bulk import chunks
from aggregator.store.schema import detail_pages, item_versions
from aggregator.store.versions import VERSIONS, to_item

_p = detail_pages.c


def pages(conn: Connection, source_id: str, keys: Iterable[str]) -> dict[str, DetailPage]:
    """The stored page of each of ``keys`` that has one."""
    found: dict[str, DetailPage] = {}
    for part in chunks(sorted(set(keys))):
        rows = conn.execute(
            select(_p.key, _p.url, _p.etag, _p.last_modified).where(
                _p.source_id == source_id, _p.key.in_(part)
            )
        )
        found.update((r.key, DetailPage(r.key, r.url, r.etag, r.last_modified)) for r in rows)
    return found


def save_pages(conn: Connection, source_id: str, seen: Sequence[DetailPage], now: datetime) -> None:
    """Remember each page read this time (replacing what was kept for its key)."""
    if not seen:
        return
    keys = [p.key for p in seen]
    for part in chunks(keys):
        conn.execute(delete(detail_pages).where(_p.source_id == source_id, _p.key.in_(part)))
    rows: list[dict[str, Any]] = [
        {
            "source_id": source_id,
            "key": p.key,
            "url": p.url,
            "etag": p.etag,
            "last_modified": p.last_modified,
            "fetched_at": now,
        }
        for p in seen
    ]
    conn.execute(insert(detail_pages), rows)


def versions(conn: Connection, source_id: str) -> list[Item]:
    """Every stored version of one source, oldest first (``aggregator refetch``)."""
    rows = conn.execute(
        VERSIONS.where(item_versions.c.source_id == bindparam("s")).order_by(
            item_versions.c.first_seen, item_versions.c.key
        ),
        {"s": source_id},
    )
    return [to_item(row) for row in rows]
