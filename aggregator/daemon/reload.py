"""Reloading config (SIGHUP): validate every file, swap only when all are valid.

A refused reload keeps the running config as it was. What needs a restart
(the database, ``[server]``, the pool's size) is kept and said so in the log.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError, StoreError
from aggregator.model import SourceState
from aggregator.poll import reapply_rules, utcnow
from aggregator.rules import RuleSet, config_rules
from aggregator.store import Store

log = logging.getLogger("aggregator.daemon")


class Reloader:
    """Reads the config file again and makes the store agree with it."""

    def __init__(self, config_path: Path, store: Store) -> None:
        self.config_path = config_path
        self.store = store

    def reload(self, running: Config, *, busy: set[str], workers: int) -> Config | None:
        """The new config, in force in the store; None when refused (logged)."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
            return None
        except Exception:
            log.exception("reload failed, keeping the running config")
            return None
        new = _restart_only(running, new, workers)
        categories = [c for c in (new.category(i) for i in new.categories) if c]
        try:
            self.store.sync_config(new.sources, categories, utcnow())
        except StoreError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return None
        self._reschedule_changed(running, new, busy)
        old_ids = {s.id for s in running.sources}
        new_ids = {s.id for s in new.sources}
        log.info(
            "reloaded %s: %d sources (+%d, -%d)",
            self.config_path,
            len(new.sources),
            len(new_ids - old_ids),
            len(old_ids - new_ids),
        )
        return new

    def reapply(self, new: Config) -> RuleSet:
        """The new config's rules, re-applied to the stored items; the feeds they change
        are stamped in the store, where the writer finds them."""
        rules = config_rules(new)
        try:
            reapply_rules(new, self.store, rules)
        except StoreError as exc:  # the digest still differs: the next start or reload retries
            log.error("rules not re-applied to stored items: %s", exc)
        return rules

    def _reschedule_changed(self, old: Config, new: Config, busy: set[str]) -> None:
        """Save the next poll ``due_after_reload`` gives each source (none being polled)."""
        now = utcnow()
        for source in new.sources:
            before = old.source(source.id)
            if before is None or source.id in busy:
                continue
            url_changed = before.url != source.url
            interval = new.interval(source)
            if not url_changed and interval >= old.interval(before):
                continue
            try:
                state = self.store.state(source.id)
            except (KeyError, StoreError):
                continue
            due = due_after_reload(state, interval, url_changed=url_changed, now=now)
            if due is None:
                continue
            try:
                self.store.save_state(replace(state, next_due_at=due))
            except StoreError as exc:
                log.error("%s: cannot reschedule after reload: %s", source.id, exc)
                continue
            log.info(
                "%s: %s, next poll %s",
                source.id,
                "URL changed" if url_changed else f"interval now {interval}",
                due.isoformat(timespec="seconds"),
            )


def due_after_reload(
    state: SourceState, interval: timedelta, *, url_changed: bool, now: datetime
) -> datetime | None:
    """When a source whose URL or (shorter) interval changed is due; None: keep its time.

    A new URL is due now; a shorter interval counts from the last poll. A reload
    never moves a poll later, so unchanged sources are never re-polled early.
    """
    if url_changed or state.last_poll_at is None:
        due = now
    else:
        due = max(state.last_poll_at + interval, now)
    if state.next_due_at is not None and state.next_due_at <= due:
        return None
    return due


def _restart_only(old: Config, new: Config, workers: int) -> Config:
    """``new`` with the database kept as running; warnings for what waits for a restart."""
    if new.aggregator.database != old.aggregator.database:
        log.warning("database change needs a restart; keeping %s", old.aggregator.database)
        new = new.model_copy(
            update={
                "aggregator": new.aggregator.model_copy(
                    update={"database": old.aggregator.database}
                )
            }
        )
    if new.server != old.server:
        log.warning("[server] changes take effect after a restart")
    if new.limits.workers != workers:
        log.warning("limits.workers changes take effect after a restart")
    return new
