"""``Store``: the one object the rest of the package talks to about the database.

Each method is one transaction (writers: ``BEGIN IMMEDIATE`` on SQLite) and
hands back frozen records, never rows. SQLAlchemy and driver errors are
translated here, at the boundary, into ``StoreError`` raised ``from`` them.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from aggregator import metrics
from aggregator.errors import SchemaMismatch, StoreError
from aggregator.model import (
    Category,
    CategoryInfo,
    CategoryNames,
    ConfiguredSource,
    DetailPage,
    Entry,
    HealthEvent,
    Item,
    KnownVersion,
    SourceState,
)
from aggregator.rules import NO_RULES, RuleSet
from aggregator.similar import SimilarRule
from aggregator.store import categories as cats
from aggregator.store import engine as engines
from aggregator.store import (
    feeds,
    health,
    items,
    pages,
    provenance,
    prune,
    rejoin,
    rulings,
    sources,
    versions,
)
from aggregator.store.group import GroupCommit
from aggregator.store.records import ApplyResult, Changes


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Database trouble -> StoreError naming what we were doing."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, engines.MigrationError) as exc:
        metrics.record_database_error(what.split()[0] if what else "other")
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreError(f"{what}: {detail[0] if detail else type(exc).__name__}") from exc


class Store:
    """Sources' state, items and their versions, categories; one per process, thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(readonly=True)
        self._output_locks: dict[str, threading.Lock] = {}
        self._output_locks_guard = threading.Lock()
        self._applies = GroupCommit(self._write)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect to ``url`` (any SQLAlchemy URL) and bring the schema to the newest revision."""
        try:
            engine = engines.make_engine(url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"bad database URL {url!r}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot create the database folder: {exc}") from exc
        store = cls(engine)
        if migrate:
            try:
                with translated("migrating the database"):
                    engines.migrate(engine)
            except BaseException:
                engine.dispose()
                raise
        return store

    @classmethod
    def open_readonly(cls, url: str) -> Store:
        """Connect to ``url`` to read only: nothing is created, migrated or written.

        Raises SchemaMismatch when there is no database yet or its schema is not
        this version's (``sources`` and ``serve`` say so; ``poll`` and ``run`` migrate).
        """
        try:
            parsed = engines.normalize_url(url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"bad database URL {url!r}: {exc}") from exc
        path = engines.sqlite_path(parsed)
        if path is not None and not path.is_file():
            raise SchemaMismatch(
                f"no database at {path} yet; aggregator poll or run makes it",
                None,
                engines.head_revision(),
            )
        engine = engines.make_engine(url, readonly=True)
        try:
            engines.check_schema(engine, str(path or parsed.render_as_string()))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        with translated(what), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        with translated(what), self._reader.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raises StoreError when the database does not answer."""
        with self._read("ping") as conn:
            conn.execute(text("SELECT 1"))

    # sources and categories --------------------------------------------------

    def sync_config(
        self, sources_: Sequence[ConfiguredSource], categories: Sequence[Category], now: datetime
    ) -> None:
        """New sources get a state row due ``now``; known sources keep their state; renamed
        ones move, removed ones leave the feeds (their categories are rewritten next)."""
        with self._write("saving the configured sources") as conn:
            touched = sources.sync_sources(conn, sources_, now)
            cats.sync_categories(conn, categories)
            if touched:
                cats.lock_items(conn)
                cats.bump(conn, touched)

    def ensure_categories(self, categories: Sequence[Category]) -> None:
        """Publisher categories found in items; declared ones keep the config's title."""
        if categories:
            with self._write("saving publisher categories") as conn:
                cats.ensure_categories(conn, categories)

    def category_names(self) -> CategoryNames:
        """Titles and ids of every category, for publisher category ids."""
        with self._read("reading category names") as conn:
            return cats.category_names(conn)

    def categories(self) -> list[CategoryInfo]:
        with self._read("listing categories") as conn:
            return cats.category_infos(conn)

    def state(self, source_id: str) -> SourceState:
        """Raises KeyError for a source the store does not know."""
        with self._read("reading source state") as conn:
            return sources.get_state(conn, source_id)

    def states(self) -> list[SourceState]:
        with self._read("reading source states") as conn:
            return sources.all_states(conn)

    def claim_due(
        self,
        now: datetime,
        limit: int,
        owner: str,
        lease: timedelta,
        source_ids: Sequence[str] | None = None,
        *,
        ahead: timedelta = timedelta(0),
    ) -> list[SourceState]:
        """Lease up to ``limit`` sources (of ``source_ids``) due by ``now + ahead`` to
        ``owner``; never two owners: another's lease counts until ``now`` passes it."""
        with self._write("claiming due sources") as conn:
            return sources.claim_due(conn, now, limit, owner, lease, source_ids, ahead)

    def renew_leases(self, owner: str, source_ids: Sequence[str], until: datetime) -> set[str]:
        """Extend ``owner``'s leases on sources still being polled; the ids it still held."""
        if not source_ids:
            return set()
        with self._write("renewing leases") as conn:
            return sources.renew_leases(conn, owner, source_ids, until)

    def save_state(self, state: SourceState, *, release_lease_of: str | None = None) -> None:
        """Write a poll's outcome (not ``item_count``, which the store keeps itself)."""
        with self._write("saving source state") as conn:
            sources.save_state(conn, state, release_lease_of)
            health.record_changes(conn, [state])

    def save_states(
        self, states: Sequence[SourceState], *, release_lease_of: str | None = None
    ) -> None:
        """``save_state`` of many polls in one transaction: one write lock, not one each."""
        if states:
            with self._write("saving source states") as conn:
                sources.save_states(conn, states, release_lease_of)
                health.record_changes(conn, states)

    def health_events(self, limit: int) -> list[HealthEvent]:
        """The newest ``limit`` changes of sources' conditions (health.atom), newest first."""
        with self._read("reading health events") as conn:
            return health.recent_events(conn, limit)

    def conditions(self) -> dict[str, tuple[str, HealthEvent | None]]:
        """Source id -> (last reported condition, the event that reported it, if any)."""
        with self._read("reading source conditions") as conn:
            return health.conditions(conn)

    def daily_new_items(self, since: datetime, offset: int) -> dict[tuple[str, int], int]:
        """New items per (category, day number in the zone ``offset`` s east of UTC)."""
        with self._read("counting new items") as conn:
            return health.daily_counts(conn, since, offset)

    # items ---------------------------------------------------------------------

    def known_versions(self, source_id: str, keys: Iterable[str]) -> dict[str, KnownVersion]:
        with self._read("reading stored versions") as conn:
            return versions.known_versions(conn, source_id, keys)

    def tombstoned(self, keys: Iterable[str]) -> frozenset[str]:
        """The keys among ``keys`` that were pruned (apply_items skips them)."""
        with self._read("reading tombstones") as conn:
            return versions.tombstoned(conn, keys)

    def apply_items(
        self,
        source_id: str,
        batch: Sequence[Item],
        now: datetime,
        rules: RuleSet = NO_RULES,
        *,
        force: bool = False,
        similar: SimilarRule | None = None,
    ) -> ApplyResult:
        """Store one source's versions and re-merge the items they touch (the rules run on
        the merged items), all or nothing; ``similar``: near-duplicates join too.

        Applies made at once by several threads share one transaction (group.py); each
        is committed before its call returns.
        """
        what = f"storing items of {source_id}"
        with translated(what):
            return self._applies.run(
                lambda conn: items.apply_items(
                    conn, source_id, batch, now, rules, force=force, similar=similar
                ),
                what,
            )

    def merge_duplicates(self, rules: RuleSet, now: datetime) -> rejoin.Merged:
        """Once after the upgrade: the stories stored twice before canonical links joined
        them made one entry each, kept by the item readers saw first (store/rejoin.py)."""
        with self._read("looking for stories stored twice") as conn:
            if not rejoin.pending(conn):
                return rejoin.Merged()
        with self._write("merging stories stored twice") as conn:
            return rejoin.merge_duplicates(conn, rules, now)

    def merged_away(self, since: int | None) -> list[str]:
        """Keys of the items merged into another after change counter ``since`` (None: every
        one): their posts go."""
        with self._read("reading merged items") as conn:
            return rejoin.merged_away(conn, since)

    def provenance(
        self, query: str, tracking: frozenset[str] = frozenset()
    ) -> provenance.Provenance | None:
        """The entry an Atom id, key or link names, with its versions (``aggregator explain``)."""
        with self._read("reading an entry's versions") as conn:
            return provenance.find(conn, query, tracking)

    def reapply_rules(self, rules: RuleSet, now: datetime) -> rulings.Reapplied:
        """Rules other than the stored items were made with: evaluate every item again."""
        with self._read("reading the rules digest") as conn:
            if rulings.stored_digest(conn) == rulings.digest_value(rules.digest):
                return rulings.Reapplied(current=True)
        with self._write("re-applying the rules") as conn:
            return rulings.reapply(conn, rules, now)

    def stored_items(
        self, *, fields: Collection[str], source_id: str | None = None
    ) -> Iterator[rulings.Stored]:
        """Every stored item with what the rules made of it (``rules test``: read only), and
        what rules reading ``fields`` need of its body."""
        with self._read("reading stored items") as conn:
            yield from rulings.stored_items(conn, fields=fields, source_id=source_id)

    # article pages of fulltext sources ----------------------------------------

    def detail_pages(self, source_id: str, keys: Iterable[str]) -> dict[str, DetailPage]:
        with self._read("reading article pages") as conn:
            return pages.pages(conn, source_id, keys)

    def save_detail_pages(self, source_id: str, seen: Sequence[DetailPage], now: datetime) -> None:
        if seen:
            with self._write(f"saving article pages of {source_id}") as conn:
                pages.save_pages(conn, source_id, seen, now)

    def versions_of(self, source_id: str) -> list[Item]:
        """Every version ``source_id`` carries, as stored (``aggregator refetch``)."""
        with self._read(f"reading the items of {source_id}") as conn:
            return pages.versions(conn, source_id)

    def entries(self, category: str | None, limit: int | None) -> list[Entry]:
        """Newest ``limit`` (None: all) entries of ``category`` (None: every one), ties by key."""
        with self._read("reading entries") as conn:
            return feeds.entries(conn, category, limit)

    def changed_entries(self, since: int) -> list[Entry]:
        """The entries whose items changed after change counter ``since``."""
        with self._read("reading changed entries") as conn:
            return feeds.changed_entries(conn, since)

    def dropped_items(self, since: int) -> list[tuple[str, str | None]]:
        """(key, infoCode) of the dropped items changed after ``since`` (0: every one)."""
        with self._read("reading dropped items") as conn:
            return feeds.dropped_items(conn, since)

    def change_counter(self) -> int:
        with self._read("reading the change counter") as conn:
            return cats.change_counter(conn)

    def changed_since(self, counter: int) -> Changes:
        """Categories whose entries changed after ``counter``, and the counter now."""
        with self._read("reading changes") as conn:
            return cats.changed_since(conn, counter)

    @contextmanager
    def output_lock(self, name: str, wait: timedelta = timedelta(seconds=60)) -> Iterator[None]:
        """Held while one output is read, rendered and replaced, so that instances writing
        into one folder never put older content over newer: whoever renders next reads
        after the last replace. PostgreSQL: a transaction advisory lock per name (waits up
        to ``wait``, then StoreError); SQLite: a lock of this process only (one instance).
        """
        if self.engine.dialect.name != "postgresql":
            with self._output_locks_guard:
                local = self._output_locks.setdefault(name, threading.Lock())
            with local:
                yield
            return
        key = zlib.crc32(name.encode("utf-8"))
        key = key - (1 << 32) if key >= 1 << 31 else key  # int4, as the two-key form wants
        with translated(f"locking output {name}"), self.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = {int(wait.total_seconds() * 1000)}"))
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                {"cls": engines.OUTPUT_LOCK, "key": key},
            )
            yield

    def prune(
        self, older_than: datetime, keep_per_category: int, *, now: datetime | None = None
    ) -> int:
        """Delete old items no feed shows; their keys are tombstoned for good."""
        with self._write("pruning old items") as conn:
            return prune.prune(conn, older_than, keep_per_category, now or datetime.now(UTC))
