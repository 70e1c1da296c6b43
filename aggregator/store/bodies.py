"""Bodies, each stored once: versions and merged items name theirs by hash (issue 19).

A body is what a version says at length: its sanitized body, its summary, and
the raw body as the source gave it. The raw body is kept only where an output
uses it: a Jekyll post is written from it when it is safe as it is
(``postbody.is_safe_body``), from the sanitized body otherwise, so an unsafe
raw body is dropped when the version is stored (``kept``), and one equal to the
sanitized body is not written twice (``raw_is_html``).

The key is 16 bytes of BLAKE2b over the three texts, length-prefixed: one row
per distinct body however many versions carry it, and a merged item names its
winning version's row. A merged item's body is always one of its versions'
(the merge copies the winner's), so a row that no version names is unused:
the writes that stop naming one (a changed version, prune) delete it
(``collect``), asking only the versions' index on ``body``.

Each row also keeps the body's plain text as rules on ``text`` read it, derived
once as the row is written: re-applying rules to every stored item then reads
it rather than taking the HTML apart again (issue 16).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from hashlib import blake2b
from typing import Any

from sqlalchemy import ColumnElement, Connection, Join, Table, bindparam, case, delete, exists
from sqlalchemy import select as select_

from aggregator.model import Item
from aggregator.rules import body_text
from aggregator.store.bulk import Inserts, chunks
from aggregator.store.schema import bodies, item_versions

_b = bodies.c
_INSERT = Inserts(
    bodies,
    ("hash", "content_html", "summary_html", "content_raw", "raw_is_html", "plain_text"),
    skip_existing=("hash",),
)
_UNUSED = delete(bodies).where(
    _b.hash.in_(bindparam("hashes", expanding=True)),
    ~exists(select_(1).where(item_versions.c.body == _b.hash)),
)

#: the three texts of a body, under the Item's names, for a select joined with ``joined``
CONTENT_HTML = _b.content_html
SUMMARY_HTML = _b.summary_html
CONTENT_RAW: ColumnElement[Any] = case(
    (_b.raw_is_html, _b.content_html), else_=_b.content_raw
).label("content_raw")
COLUMNS = (CONTENT_HTML, SUMMARY_HTML, CONTENT_RAW)
#: the body's plain text as rules read it (None: not derived, as in a row from before 0014)
PLAIN_TEXT = _b.plain_text


def joined(table: Table) -> Join:
    """``table`` (items or item_versions) with its body's row, where it has one."""
    return table.outerjoin(bodies, _b.hash == table.c.body)


def kept(item: Item) -> Item:
    """The version as it is stored: its raw body only where a post uses it (``post_raw``;
    a parse child already applied it to a feed's items, issue 19: None costs nothing here)."""
    from aggregator.postbody import post_raw  # the sanitizer's lists: a poll that stores

    raw = post_raw(item.content_raw)
    return item if raw is item.content_raw else replace(item, content_raw=raw)


def digest(html: str | None, summary: str | None, raw: str | None) -> bytes | None:
    """The body's key; None: no text at all (no row)."""
    if html is None and summary is None and raw is None:
        return None
    h = blake2b(digest_size=16)
    for text in (html, summary, raw):
        if text is None:
            h.update(b"-")
        else:
            data = text.encode("utf-8", "surrogatepass")
            h.update(b"%d:" % len(data))
            h.update(data)
    return h.digest()


def key_of(item: Item) -> bytes | None:
    return digest(item.content_html, item.summary_html, item.content_raw)


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write`` made of one source's bodies."""

    #: item key -> its body's key, for the rows that name it
    keys: dict[str, bytes | None]
    #: body key -> its plain text (``plain_text``): the rules on ``text`` read it at ingest
    texts: dict[bytes, str]


def write(conn: Connection, items: Iterable[Item]) -> Written:
    """Store the bodies of one source's ``items`` (``kept`` already) not stored yet."""
    keys: dict[str, bytes | None] = {}
    rows: dict[bytes, dict[str, Any]] = {}
    for item in items:
        key = keys[item.key] = key_of(item)
        if key is None or key in rows:
            continue
        html, raw = item.content_html, item.content_raw
        same = raw is not None and raw == html
        rows[key] = {
            "hash": key,
            "content_html": html,
            "summary_html": item.summary_html,
            "content_raw": None if same else raw,
            "raw_is_html": same,
            "plain_text": body_text(html or item.summary_html),
        }
    _INSERT.execute(conn, rows.values())
    return Written(keys, {key: row["plain_text"] for key, row in rows.items()})


def collect(conn: Connection, hashes: Iterable[bytes | None]) -> None:
    """Delete the rows of ``hashes`` that no version names any more."""
    candidates: Sequence[bytes] = sorted({h for h in hashes if h is not None})
    for part in chunks(candidates):
        conn.execute(_UNUSED, {"hashes": part})
