"""Rules on what is stored: re-applied when they change, or tried without changing anything.

Every merged row keeps what the rules made of it (``dropped``, ``title`` with
``base_title`` before a retitle, its ``item_categories``); the versions under
it are kept as the sources gave them. So when the rules change, each stored
item is evaluated again from its merged view (the union of its versions'
categories, every source carrying it, its title before any rule), and only
the items whose outcome differs are written: no refetch (Miniflux #2683).

The digest of the rules the rows were made with is kept in ``meta``
(name ``rules``), so ``poll``, ``build`` and the daemon see an edit.
"""

from __future__ import annotations

import gc
import re
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from aggregator.rules import (
    ItemView,
    RuleOutcome,
    RuleSet,
    body_text,
    rules_from_json,
)
from aggregator.rules.child import Evaluator, Reading
from aggregator.rules.window import Edit, edit
from aggregator.store import bodies as texts
from aggregator.store import categories as cats
from aggregator.store import counts
from aggregator.store.bulk import CHUNK, Inserts, Query, chunks, upsert
from aggregator.store.engine import is_sqlite_memory, make_engine
from aggregator.store.merge import shown_hash
from aggregator.store.schema import applied_rules as applied
from aggregator.store.schema import item_categories, item_versions, items, meta
from aggregator.store.schema import sources as sources_t

#: items read per round trip while evaluating (by id range; by id list: BATCH_IDS); the
#: first is evaluated before any is written: where a child evaluates, the smaller the sooner
BATCH = 10_000
#: re-applications to at least this many items evaluate them in a second process while
#: this one reads and writes (rules/child.py); fewer do not repay the child's start
CHILD_ITEMS = 40_000
BATCH_IDS = CHUNK
_DIGEST = "rules"

_i = items.c
_UPDATE = Query(
    update(items)
    .where(_i.id == bindparam("b_id"))
    .values(
        title=bindparam("title"),
        base_title=bindparam("base_title"),
        dropped=bindparam("dropped"),
        content_hash=bindparam("content_hash"),
        post_category=bindparam("post_category"),
        updated=bindparam("updated"),
        changed=bindparam("changed"),
    )
)
_UNFILE = Query(
    delete(item_categories).where(
        item_categories.c.item_id == bindparam("b_item"),
        item_categories.c.category_id == bindparam("b_category"),
    )
)
_FILE = Inserts(item_categories, ("item_id", "category_id", "published", "key"))


def digest_value(digest: str) -> int:
    """The rules' digest as the integer ``meta`` keeps (60 bits of it)."""
    return int(digest[:15], 16)


def stored_digest(conn: Connection) -> int | None:
    return conn.execute(select(meta.c.value).where(meta.c.name == _DIGEST)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored item: its merged view before rules, and what the rules made of it."""

    item_id: int
    view: ItemView
    title: str
    dropped: bool
    filed: frozenset[str]
    post_category: str | None


#: (the sources carrying an item, the union of their categories), each sorted
_Carried = tuple[tuple[str, ...], tuple[str, ...]]


def body_column() -> Any:
    """The stored body rules read (``text``, ``content``): the sanitized body, else the
    summary; one column, so the body's raw copy is never read."""
    return func.coalesce(func.nullif(texts.CONTENT_HTML, ""), texts.SUMMARY_HTML)


class _UTF8(FunctionElement[bytes]):
    """A text column read as its UTF-8 bytes (SQLite: the stored text's own bytes), for
    rules that match UTF-8: a text a child process evaluates is not decoded here."""

    type = LargeBinary()
    inherit_cache = True
    name = "utf8"


@compiles(_UTF8, "sqlite")
def _utf8_sqlite(element: _UTF8, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS BLOB)"


@compiles(_UTF8, "postgresql")
def _utf8_postgresql(element: _UTF8, compiler: Any, **kw: Any) -> str:
    return f"convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')"


def _text(plain: bytes | None, body: str | None) -> str | None:
    """The text derived from the body read where no plain text was (``_read``); None
    where the plain text was read (the view carries it as UTF-8, ``text_utf8``)."""
    return None if plain is not None or body is None else body_text(body)


def _utf8(plain: bytes | None, body: str | None) -> bytes | None:
    """``_text`` as UTF-8: the plain text as read."""
    if plain is not None or body is None:
        return plain
    return body_text(body).encode()


def stored_items(
    conn: Connection,
    *,
    fields: Collection[str],
    source_id: str | None = None,
    ids: Sequence[int] | None = None,
) -> Iterator[Stored]:
    """Every stored item (of ``source_id``; or those of ``ids``) in id order, with what
    rules reading ``fields`` need of its body (the view's ``text`` and ``content_html``)."""
    if source_id is not None:
        ids = _carried_by(conn, [source_id])
    for batch in _stored_batches(conn, fields, ids=ids):
        for one, _, _ in batch:
            yield one


#: what the content hash of an item needs besides what the rules make of it (its body by
#: key: merge.shown_hash), and its ``updated`` for the categories' counts
_HASHED = (_i.infocode, _i.published, _i.updated, _i.enclosures, _i.body)
#: how many columns ``_read`` selects before ``_HASHED``
_READ = 11
#: the statements ``_read`` made: (text read, content read, hashed, which items) -> statement
_READS: dict[tuple[bool, bool, bool, str], Query] = {}


def _read(fields: Collection[str], *, hashed: bool, which: str) -> Query:
    """The statement reading items in id order for rules reading ``fields``: the item's
    id, key, title, base_title, dropped, author, link, post_category; its body's plain text
    (and its body, only where no plain text was derived, bodies.py) for ``text``; its body
    for ``content``: NULL for a field no rule reads. Then ``_HASHED`` where ``hashed``.
    ``which``: "after" (``limit`` of those after id ``last``), "between" (ids ``lo`` to
    ``hi``) or "listed" (those of the IN list ``ids``)."""
    text, content = "text" in fields, "content" in fields
    made = (text, content, hashed, which)
    query = _READS.get(made)
    if query is not None:
        return query
    plain = texts.PLAIN_TEXT
    columns: list[Any] = [_i.id, _i.key, _i.title, _i.base_title, _i.dropped, _i.author]
    columns += [
        _i.link,
        _i.post_category,
        (_UTF8(plain) if text else null()).label("plain"),
        (case((plain.is_(None), body_column())) if text else null()).label("body"),
        (body_column() if content else null()).label("html"),
    ]
    stmt = select(*columns, *(_HASHED if hashed else ()))
    if text or content:
        stmt = stmt.select_from(texts.joined(items))
    if which == "listed":
        stmt = stmt.where(_i.id.in_(bindparam("ids", expanding=True)))
    elif which == "between":
        stmt = stmt.where(_i.id.between(bindparam("lo"), bindparam("hi")))
    else:
        stmt = stmt.where(_i.id > bindparam("last")).limit(bindparam("limit"))
    query = _READS[made] = Query(stmt.order_by(_i.id), "ids" if which == "listed" else None)
    return query


def _stored_batches(
    conn: Connection,
    fields: Collection[str],
    *,
    ids: Sequence[int] | None = None,
    hashed: bool = False,
    decoded: bool = True,
    carried: bool = True,
    filings: bool = True,
) -> Iterator[list[tuple[Stored, bytes | None, Sequence[Any]]]]:
    """``stored_items``, ``BATCH`` (or ``BATCH_IDS``) at a time, each with its text as
    UTF-8 and the rest of its row: ``_HASHED`` where ``hashed`` (items' own columns) as the
    driver gives it (``_hashed`` converts it), else nothing. ``decoded``: the view has its
    text (as read, UTF-8: ``text_utf8``) and the UTF-8 beside it is None; else the view has
    none, the UTF-8 beside it is what was read (or derived) for a child process.
    ``carried``: the view has the sources carrying the item and their categories; else
    neither (a reader that only writes what a child evaluated needs them not).
    ``filings``: ``Stored.filed`` is what the item is filed in; else empty (a reader that
    only evaluates needs it not).

    Read on the driver, each value used as it comes (no type's conversion, no Row): what
    SQLAlchemy made of 100,000 rows cost more than SQLite's reading them (issue 16)."""
    none: _Carried = ((), ())
    unfiled: frozenset[str] = frozenset()
    for rows in _batches(conn, fields, hashed=hashed, ids=ids):
        by_item = _versions(conn, rows) if carried else {}
        filed = _filed(conn, rows) if filings else {}
        batch: list[tuple[Stored, bytes | None, Sequence[Any]]] = []
        for row in rows:
            item_id, key, title, base, dropped, author, link, post, plain, body, html = row[:_READ]
            sources, categories = by_item.get(item_id, none)
            view = ItemView(
                key=key,
                title=base if base is not None else title,
                sources=sources,
                categories=categories,
                content_html=html,
                author=author,
                link=link,
                text=_text(plain, body) if decoded else None,
                text_utf8=plain if decoded else None,
            )
            stored = Stored(item_id, view, title, bool(dropped), filed.get(item_id, unfiled), post)
            batch.append((stored, None if decoded else _utf8(plain, body), row[_READ:]))
        yield batch


def _hashed(conn: Connection, fields: Collection[str]) -> Callable[[Sequence[Any]], Any]:
    """The driver's values of ``_HASHED`` (``_stored_batches``) -> as their types read them:
    done only for the items written."""
    end = _READ + len(_HASHED)
    return _read(fields, hashed=True, which="after").converter(conn.dialect, _READ, end)


def _batches(
    conn: Connection, fields: Collection[str], *, hashed: bool, ids: Sequence[int] | None
) -> Iterator[list[tuple[Any, ...]]]:
    """``_read``'s rows, ``BATCH`` at a time in id order: every item, or those of ``ids``."""
    if ids is not None:
        for part in chunks(sorted(ids), BATCH):
            if rows := _rows_of(conn, fields, hashed, part):
                yield rows
        return
    query = _read(fields, hashed=hashed, which="after")
    last = 0
    while rows := query.tuples(conn, {"last": last, "limit": BATCH}):
        last = rows[-1][0]
        yield rows


def _rows_of(
    conn: Connection, fields: Collection[str], hashed: bool, ids: Sequence[int]
) -> list[tuple[Any, ...]]:
    """``_read``'s rows of the items ``ids`` (sorted): one range where they are most of
    it (a child reading a batch the parent read by range: all of it), else IN lists."""
    lo, hi = ids[0], ids[-1]
    if hi - lo < 2 * len(ids):
        rows = _read(fields, hashed=hashed, which="between").tuples(conn, {"lo": lo, "hi": hi})
        if hi - lo + 1 == len(ids):
            return rows
        wanted = set(ids)
        return [row for row in rows if row[0] in wanted]
    listed = _read(fields, hashed=hashed, which="listed")
    return [row for part in chunks(ids, BATCH_IDS) for row in listed.tuples(conn, values=part)]


def _carried_by(conn: Connection, source_ids: Sequence[str]) -> list[int]:
    """The ids of the items ``source_ids`` carry."""
    v = item_versions.c
    found: set[int] = set()
    for part in chunks(source_ids):
        found.update(conn.execute(select(v.item_id).where(v.source_id.in_(part))).scalars())
    return sorted(found)


def _per_item(query: Select[Any]) -> tuple[Query, Query]:
    """``query`` (its first column an item id) for the items of a range, and of an IN list."""
    column = query.selected_columns[0]
    return (
        Query(query.where(column.between(bindparam("lo"), bindparam("hi")))),
        Query(query.where(column.in_(bindparam("ids", expanding=True))), "ids"),
    )


_v = item_versions.c
_VERSIONS = _per_item(select(_v.item_id, _v.source_id, _v.categories))
_CARRIED = _per_item(select(_v.item_id, _v.source_id, null().label("categories")))
_FILED = _per_item(select(item_categories.c.item_id, item_categories.c.category_id))


def _of_items(conn: Connection, queries: tuple[Query, Query], rows: Sequence[Any]) -> Any:
    """``_per_item`` queries' rows (as the driver gives them) for the items of ``rows`` (in
    id order): one range where they are most of it, else lists of their ids."""
    by_range, by_list = queries
    lo, hi = rows[0][0], rows[-1][0]
    if hi - lo < 2 * len(rows):
        return by_range.tuples(conn, {"lo": lo, "hi": hi})
    return [
        one for part in chunks([r[0] for r in rows]) for one in by_list.tuples(conn, values=part)
    ]


def _filed(conn: Connection, rows: Sequence[Any]) -> dict[int, frozenset[str]]:
    """Item id -> the categories it is filed in, for the items of ``rows`` (the items filed
    in one category, most, share one set per category)."""
    filed: dict[int, frozenset[str]] = {}
    alone: dict[str, frozenset[str]] = {}
    for item_id, category in _of_items(conn, _FILED, rows):
        got = filed.get(item_id)
        if got is None:
            one = alone.get(category)
            if one is None:
                one = alone[category] = frozenset((category,))
            filed[item_id] = one
        else:
            filed[item_id] = got | {category}
    return filed


def _versions(
    conn: Connection, rows: Sequence[Any], *, categories: bool = True
) -> dict[int, _Carried]:
    """Item id -> ``_Carried``, for the items of ``rows``; without ``categories``, none.
    The items one version carries (most) share one pair per source and categories."""
    dialect = conn.dialect
    convert = _v.categories.type.dialect_impl(dialect).result_processor(dialect, None)
    pairs: dict[tuple[str, Any], _Carried] = {}
    found: dict[int, _Carried] = {}
    several: dict[int, list[_Carried]] = {}  #: the items more than one version carries
    for item_id, source, stored in _of_items(conn, _VERSIONS if categories else _CARRIED, rows):
        pair = pairs.get((source, stored))
        if pair is None:
            named: Any = convert(stored) if convert and stored is not None else stored
            pair = pairs[source, stored] = ((source,), tuple(sorted(set(named or ()))))
        if item_id in found:
            several.setdefault(item_id, [found[item_id]]).append(pair)
        else:
            found[item_id] = pair
    for item_id, each in several.items():
        union = set().union(*(named for _, named in each))
        found[item_id] = (tuple(sorted(s for (s,), _ in each)), tuple(sorted(union)))
    return found


def may_change(conn: Connection, change: Edit) -> tuple[int, list[int]]:
    """How many items the edit's check looked at, and the ids of those some changed rule
    could act on (window.py); the check reads only what its rules read."""
    ids = None
    if change.sources is not None:
        every = conn.execute(select(sources_t.c.id)).scalars()
        chosen = [sid for sid in every if any(fnmatchcase(sid, g) for g in change.sources)]
        ids = _carried_by(conn, chosen)
    looked = 0
    flagged: list[int] = []
    none: _Carried = ((), ())
    for rows in _batches(conn, change.fields, hashed=False, ids=ids):
        carried = _versions(conn, rows, categories=False)
        looked += len(rows)
        for item_id, key, title, base_title, _, author, link, _, plain, body, html in rows:
            view = ItemView(
                key=key,
                title=base_title if base_title is not None else title,
                sources=carried.get(item_id, none)[0],
                categories=(),
                content_html=html,
                author=author,
                link=link,
                text=_text(plain, body),
                text_utf8=plain,
            )
            if change.may_change(view):
                flagged.append(item_id)
    return looked, flagged


def differs(stored: Stored, outcome: RuleOutcome) -> bool:
    """The rules now make something else of this item than what is stored."""
    filed = frozenset(() if outcome.dropped else outcome.categories)
    return (outcome.title, outcome.dropped, filed) != (stored.title, stored.dropped, stored.filed)


@dataclass(frozen=True, slots=True)
class Reapplied:
    """What re-applying changed rules did to the stored items."""

    evaluated: int = 0  #: items looked at
    changed: int = 0  #: items whose title, categories or dropped state changed
    dropped: int = 0  #: of those, newly dropped
    restored: int = 0  #: of those, no longer dropped
    changed_categories: frozenset[str] = field(default_factory=frozenset)
    current: bool = False  #: the rules had not changed: nothing was evaluated
    #: items looked at that no changed rule could act on (window.py): not evaluated again
    skipped: int = 0


def applied_rules(conn: Connection, stored: int | None) -> RuleSet | None:
    """The rules the stored items were made with (digest ``stored``); None: not known
    (a store from before they were kept, or kept rules that no longer compile)."""
    if stored is None:
        return None
    said = conn.execute(select(applied.c.rule).order_by(applied.c.position)).scalars().all()
    try:
        old = rules_from_json(said)
    except ValueError:
        return None
    return old if digest_value(old.digest) == stored else None


#: the kept rules last compiled by ``in_force``: digest -> rules
_IN_FORCE: dict[int, RuleSet] = {}


def in_force(conn: Connection, rules: RuleSet) -> RuleSet:
    """The rules a writer holding the items lock must apply: the kept ones, where a
    re-application stored others since the writer took ``rules`` (a daemon's poll begun
    before a reload). Its items would otherwise stand under a digest they were not made
    with, and no later re-application (current, or an edit's check) would look at them
    again. ``rules`` where nothing is kept to go by."""
    stored = stored_digest(conn)
    if stored is None or stored == digest_value(rules.digest):
        return rules
    kept = _IN_FORCE.get(stored)
    if kept is None:
        kept = applied_rules(conn, stored)
        if kept is None:
            return rules
        _IN_FORCE.clear()
        _IN_FORCE[stored] = kept
    return kept


def _keep(conn: Connection, rules: RuleSet) -> None:
    """``rules`` as the ones the stored items are now made with: digest and each rule."""
    value = digest_value(rules.digest)
    upsert(conn, meta, [{"name": _DIGEST, "value": value}], ["name"], ["value"])
    conn.execute(delete(applied))
    if rules.rules:
        conn.execute(insert(applied), [{"position": r.number, "rule": r.said} for r in rules.rules])


class _Collector:
    """Pauses the cyclic garbage collector while re-applying (``paused``).

    A re-application holds a few hundred thousand live tuples and records (a batch read,
    one evaluated, one written), and every collection walks them all again: 0.3 s to
    0.7 s of a 4 s re-application of 100,000 items (issue 16). It makes no cycles; what it
    frees, reference counting frees. Counted, so threads that overlap leave the collector
    as the first one found it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pausing = 0
        self._was_enabled = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if not self._pausing:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._pausing += 1
        try:
            yield
        finally:
            with self._lock:
                self._pausing -= 1
                if not self._pausing and self._was_enabled:
                    gc.enable()


_COLLECTOR = _Collector()


def reapply(conn: Connection, rules: RuleSet, now: datetime) -> Reapplied:
    """Evaluate the stored items again when the rules differ from the stored digest: after
    an edit, only those the changed rules could act on (window.py), else every one.

    Read, evaluated and written a batch at a time; only the items whose outcome differs
    are written, in one statement per table and batch."""
    with _COLLECTOR.paused():
        return _reapply(conn, rules, now)


def _reapply(conn: Connection, rules: RuleSet, now: datetime) -> Reapplied:
    cats.lock_items(conn)
    stored = stored_digest(conn)
    value = digest_value(rules.digest)
    if stored == value:
        return Reapplied(current=True)
    if stored is None and not rules.rules:  # every row was made without rules: as they are
        _keep(conn, rules)
        return Reapplied()
    old = applied_rules(conn, stored)
    change = edit(old, rules) if old is not None else None
    looked, ids = may_change(conn, change) if change is not None else (0, None)
    evaluated = 0
    writer = _Writer(conn, now)
    hashed = _hashed(conn, rules.fields)
    many = (len(ids) if ids is not None else _count(conn)) >= CHILD_ITEMS
    fields = rules.fields

    def views_of(part: Sequence[int]) -> tuple[list[int], list[ItemView]]:
        return _views_of(conn, fields, part)

    reading = _reading(conn, fields) if many else None
    with Evaluator(rules, child=many, reading=reading, views_of=views_of) as evaluator:
        reads = evaluator.reads  # the child reads the views: this process, what it writes
        batches = _stored_batches(
            conn,
            () if reads else fields,
            ids=ids,
            hashed=True,
            decoded=not evaluator.in_child,  # a child decodes the texts itself
            carried=not reads,
        )
        for batch, outcomes in _evaluated(evaluator, batches):
            evaluated += len(batch)
            moved = [
                (one, outcome, hashed(rest))
                for (one, _, rest), outcome in zip(batch, outcomes, strict=True)
                if differs(one, outcome)
            ]
            if moved:
                writer.write(moved)
    writer.finish()
    _keep(conn, rules)
    return Reapplied(
        evaluated=max(looked, evaluated),
        changed=writer.changed,
        dropped=writer.dropped,
        restored=writer.restored,
        changed_categories=frozenset(writer.categories),
        skipped=looked - evaluated if ids is not None else 0,
    )


def _count(conn: Connection) -> int:
    """How many items a full re-application reads."""
    return conn.execute(select(func.count()).select_from(items)).scalar_one()


def _evaluated(
    evaluator: Evaluator, batches: Iterator[list[tuple[Stored, bytes | None, Sequence[Any]]]]
) -> Iterator[tuple[list[tuple[Stored, bytes | None, Sequence[Any]]], list[RuleOutcome]]]:
    """Each batch with what the rules make of its items; the next batch is read and sent
    before this one's outcomes are taken, so a child evaluates it while this one is written.
    Where the child reads the views itself, only the batch's ids are sent; the first batch
    is read and evaluated here while the child starts."""
    waiting: deque[list[tuple[Stored, bytes | None, Sequence[Any]]]] = deque()
    for n, batch in enumerate(batches):
        if evaluator.reads:  # the first here: the child is starting (0.3 s), this would wait
            evaluator.send_ids([one.item_id for one, _, _ in batch], here=n == 0)
        else:
            evaluator.send([one.view for one, _, _ in batch], [text for _, text, _ in batch])
        waiting.append(batch)
        if len(waiting) > 1:
            yield waiting.popleft(), evaluator.receive()
    while waiting:
        yield waiting.popleft(), evaluator.receive()


def _views_of(
    conn: Connection, fields: Collection[str], ids: Sequence[int]
) -> tuple[list[int], list[ItemView]]:
    """The stored items ``ids`` as rules reading ``fields`` see them: their ids as read
    (an item gone is missing) and their views, with their texts."""
    read: list[int] = []
    views: list[ItemView] = []
    for batch in _stored_batches(conn, fields, ids=ids, filings=False):
        for one, _, _ in batch:
            read.append(one.item_id)
            views.append(one.view)
    return read, views


def _reading(conn: Connection, fields: Collection[str]) -> Reading | None:
    """Where a child process can read the stored items as this transaction sees them:
    a SQLite file (in WAL, a reader that begins after this writer sees what it saw, none
    of its writes: no other writer commits while it holds the lock); PostgreSQL in the
    snapshot this transaction exports. None: only this connection can (in-memory SQLite)."""
    url = conn.engine.url
    if is_sqlite_memory(url):
        return None
    snapshot = None
    if conn.dialect.name == "postgresql":
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    return Reading(url.render_as_string(hide_password=False), snapshot, tuple(sorted(fields)))


#: what PostgreSQL's pg_export_snapshot returns (checked: it is spliced into a SET)
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)*")


@contextmanager
def snapshot_views(
    reading: Reading,
) -> Iterator[Callable[[Sequence[int]], tuple[list[int], list[ItemView]]]]:
    """In a child process (rules/child.py): ids -> their ids as read and their views, read
    on a read-only connection of this process, in one transaction that sees what the
    parent's saw (``_reading``)."""
    engine = make_engine(reading.url, readonly=True)
    try:
        with engine.connect() as conn:
            if reading.snapshot is not None:
                if not _SNAPSHOT_ID.fullmatch(reading.snapshot):
                    raise ValueError(f"not a snapshot id: {reading.snapshot!r}")
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if reading.snapshot is not None:
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{reading.snapshot}'")
                yield lambda ids: _views_of(conn, reading.fields, ids)
    finally:
        engine.dispose()


#: the values ``_Writer`` gives ``_UPDATE`` for each row (then "updated" and "changed",
#: alike in every row of one re-application)
_UPDATED = ("title", "base_title", "dropped", "content_hash", "post_category", "b_id")


class _Writer:
    """Writes the items whose outcome changed, a batch at a time: rows, filing; the
    categories' counts once, at the end.

    Per item only what differs is worked out (its hash, its row's values, the filings
    that change); what repeats across items is worked out once per distinct value: a
    set of categories' post category, and the counts (tallied per set of categories
    before and after, issue 16: 100,000 items re-applied at once)."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.tally = counts.Tally()
        self.categories: set[str] = set()  #: whose feeds change
        self.changed = self.dropped = self.restored = 0
        self._ranks: cats.Categories | None = None
        self._stamp: int | None = None  #: the change counter the rows written carry
        self._posts: dict[tuple[str, ...], str | None] = {}  #: filed -> its post category
        #: categories items left -> how many items, the newest ``updated`` among them
        self._left: dict[frozenset[str], tuple[int, datetime]] = {}
        self._came: dict[tuple[str, ...], int] = {}  #: categories items came to -> how many

    def write(self, moved: list[tuple[Stored, RuleOutcome, Sequence[Any]]]) -> None:
        """``moved``: each item, what the rules now make of it, and its ``_HASHED``."""
        conn = self.conn
        if self._ranks is None:
            self._ranks = cats.read_categories(conn)
            self._stamp = cats.stamp(conn)
        ranks, posts, left, came = self._ranks.ranks, self._posts, self._left, self._came
        updates: list[tuple[Any, ...]] = []
        filings: list[tuple[Any, ...]] = []
        unfiled: list[tuple[int, str]] = []
        for stored, outcome, rest in moved:
            infocode, published, updated, enclosures, body = rest
            title, dropped, old = outcome.title, outcome.dropped, stored.filed
            filed = () if dropped else outcome.categories
            view = stored.view
            post = stored.post_category
            if post is None or post not in filed:
                post = posts.get(filed)
                if post is None and filed and filed not in posts:
                    post = posts[filed] = cats.post_category(filed, (), ranks)
            base = view.title
            shown = shown_hash(
                title, view.link, body, view.author, published, filed, infocode, enclosures
            )
            item_id = stored.item_id
            updates.append((title, None if title == base else base, dropped, shown, post, item_id))
            if len(old) != len(filed) or not old.issuperset(filed):
                key = view.key
                filings += [(item_id, c, published, key) for c in filed if c not in old]
                unfiled += [(item_id, c) for c in old if c not in filed]
            if old:
                was = left.get(old)
                left[old] = (1, updated) if was is None else (was[0] + 1, max(was[1], updated))
            came[filed] = came.get(filed, 0) + 1
            if dropped != stored.dropped:
                if dropped:
                    self.dropped += 1
                else:
                    self.restored += 1
        self.changed += len(moved)
        _UPDATE.many_values(conn, _UPDATED, updates, {"updated": self.now, "changed": self._stamp})
        _UNFILE.many_values(conn, ("b_item", "b_category"), unfiled)  # a retitled item's stay
        _FILE.execute_values(conn, filings)

    def finish(self) -> None:
        """The categories' counts and change stamps (after every batch: once)."""
        if self._ranks is None:
            return
        for old, (n, newest) in self._left.items():
            self.tally.remove(old, newest, n)
            self.categories.update(old)
        for filed, n in self._came.items():
            if filed:
                self.tally.add(filed, self.now, n)
                self.categories.update(filed)
        self.tally.write(self.conn, self._ranks.newest)
        cats.bump(self.conn, self.categories, value=self._stamp)
