"""Group commit: applies that arrive while another is being written share its transaction.

A commit writes every page the transaction touched, and most of an apply's pages are
index pages its rows land on at random (links, titles, dates, uuids): one source's 50
items touch nearly as many pages as 1,000 items do. So the poll's workers do not each
commit their own source: the first to find the writer free takes every apply queued by
then, runs them in one transaction, commits once, and hands each its own result. When
one of them fails, that transaction is rolled back and each is run again alone (no
savepoints: SQLite writes a page's old content to a sub-journal for each), so the
failure raises in its own caller and the others commit. Nobody returns before the
commit: what a caller was told is stored is stored, as with a transaction each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection

#: applies written in one transaction at most (what one failed commit takes down)
MOST = 64


class _Job:
    """One caller's apply, and its result or error once its transaction ended."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """Runs work in transactions ``begin(what)`` opens (the store's writer), shared."""

    def __init__(self, begin: Callable[[str], AbstractContextManager[Connection]]) -> None:
        self._begin = begin
        self._changed = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def run(self, work: Callable[[Connection], Any], what: str) -> Any:
        """``work(conn)`` in a transaction committed before this returns (it may run twice:
        a transaction it shared failed; the first run's writes were rolled back)."""
        job = _Job(work)
        with self._changed:
            self._queue.append(job)
            while not job.done and self._busy:
                self._changed.wait()
            if job.done:
                return job.outcome()
            self._busy = True  # this caller writes: its own job first, then who queued
            others = [j for j in self._queue if j is not job]
            jobs, self._queue = [job, *others[: MOST - 1]], others[MOST - 1 :]
        try:
            self._write(jobs, what if len(jobs) == 1 else f"{what} (and {len(jobs) - 1} more)")
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
        return job.outcome()

    def _write(self, jobs: list[_Job], what: str) -> None:
        try:
            if len(jobs) > 1:
                try:
                    self._together(jobs, what)
                    return
                except Exception:  # noqa: BLE001 - one of them failed: each alone, below
                    for job in jobs:
                        job.result = None
            for job in jobs:
                try:
                    self._together([job], what)
                except Exception as exc:  # noqa: BLE001 - raised in its own caller
                    job.error = exc
        finally:
            for job in jobs:
                job.done = True

    def _together(self, jobs: list[_Job], what: str) -> None:
        with self._begin(what) as conn:
            for job in jobs:
                job.result = job.work(conn)
