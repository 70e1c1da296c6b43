"""Rules evaluated in a second process, a batch of item views at a time (issue 16).

Re-applying changed rules to every stored item reads, evaluates and writes a
batch at a time; in one process the three add up. A child interpreter that
evaluates batch k+1 while the parent writes batch k (and reads k+2) takes the
evaluation off the parent's path, on a second core:

    parent ──views of batch k (pickled)──▶ child ──(dropped, title, categories)…──▶ parent

Where the store can be read from a second connection (``Reading``: a SQLite
file, or PostgreSQL in the parent's exported snapshot), the child reads the
views itself, bodies' texts and all (200 MB for 100,000 stored items), and the
parent sends only the ids of each batch:

    parent ──ids of batch k──▶ child ──reads their views, evaluates──▶ ids, outcomes…──▶ parent

The child is a plain interpreter on pipes (``subprocess``, as parse/budget.py:
safe from a threaded daemon, no fork), in its own session (a terminal's Ctrl-C
is for the parent); it compiles the rules again from what each says
(``Rule.said``) and exits when its stdin closes. It never writes: the parent
keeps the transaction, the child only reads in it (store/rulings.py,
``snapshot_views``). Where no child starts, or one fails, the batches are
evaluated in the parent: the same outcomes, one core.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import IO

from aggregator import pipes
from aggregator.rules import ItemView, RuleOutcome, RuleSet, apply_rules

log = logging.getLogger("aggregator.rules")

#: fcntl's F_SETPIPE_SZ (Linux; Python has it as fcntl.F_SETPIPE_SZ from 3.10, not typed)
_F_SETPIPE_SZ = 1031
#: at EOF the child leaves without tearing its heap down (0.1 s the parent's ``close``
#: would wait for): each answer was flushed as it went, its reading transaction is over
_CHILD = "from aggregator.rules.child import child_main; child_main(); import os; os._exit(0)"
#: the fields of an ItemView sent pickled: all but its text, sent as UTF-8 (``send``)
_NAMES = tuple(f.name for f in fields(ItemView) if f.name not in ("text", "text_utf8"))
_VALUES = attrgetter(*_NAMES)


@dataclass(frozen=True, slots=True)
class Reading:
    """Where a child reads the views of stored items itself (store/rulings.py)."""

    url: str  #: the store's database URL, password and all (sent on a pipe, never argv)
    snapshot: str | None  #: PostgreSQL: the parent's exported snapshot; SQLite: none needed
    fields: tuple[str, ...]  #: the fields the rules read (``RuleSet.fields``)


#: ids of stored items -> (their ids as read, their views), read in this process
ViewsOf = Callable[[Sequence[int]], tuple[Sequence[int], Sequence[ItemView]]]


class Evaluator:
    """``apply_rules`` over batches of views, in a child process where one runs; each
    ``receive`` gives the outcomes of the oldest batch sent and not yet received.

    A child's outcomes leave out ``effects`` (which rules acted): a re-application
    writes what the rules made of each item, not which rule made it.
    """

    def __init__(
        self,
        rules: RuleSet,
        *,
        child: bool,
        reading: Reading | None = None,
        views_of: ViewsOf | None = None,
    ) -> None:
        """``child``: evaluate in a second process (where there is a second core).
        ``reading`` and ``views_of``: batches are sent as ids (``send_ids``); the child
        reads their views where ``reading`` says, this process with ``views_of``."""
        self.rules = rules
        #: the batches sent and not yet received: their views and texts, or their ids (in a
        #: tuple of one: evaluated here)
        self._sent: deque[
            tuple[Sequence[ItemView], Sequence[bytes | None]] | list[int] | tuple[list[int]]
        ]
        self._sent = deque()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reading = reading if views_of is not None else None
        self._views_of = views_of
        if child and rules.rules and (os.cpu_count() or 1) > 1:
            self._start()

    @property
    def in_child(self) -> bool:
        return self._proc is not None

    @property
    def reads(self) -> bool:
        """A child reads each batch's views itself: send their ids (``send_ids``)."""
        return self._proc is not None and self._reading is not None

    def _start(self) -> None:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):  # a larger pipe: fewer wake-ups per batch
                fcntl.fcntl(self._proc.stdin.fileno(), _F_SETPIPE_SZ, 1 << 20)
            said = [r.said for r in self.rules.rules]
            start = (said, self.rules.digest, self._reading)
            self._write(pickle.dumps(start, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            self._fail(exc)

    def send(self, views: Sequence[ItemView], texts: Sequence[bytes | None] = ()) -> None:
        """Evaluate ``views``; ``texts``: their texts as UTF-8 where the views have none
        (a child decodes them: pickled, each text would be encoded here and decoded there,
        at a cost on the order of evaluating it)."""
        if not texts:
            texts = [None] * len(views)
        self._sent.append((views, texts))
        if self._proc is None:
            return
        try:
            pairs = zip(views, texts, strict=True)
            texts = [t if (given := _utf8(v)) is None else given for v, t in pairs]
            lengths = [-1 if t is None else len(t) for t in texts]
            values = [_VALUES(v) for v in views]
            head = pickle.dumps((values, lengths), protocol=pickle.HIGHEST_PROTOCOL)
            self._write(len(head).to_bytes(pipes.HEADER, "big") + head, *[t for t in texts if t])
        except OSError as exc:
            self._fail(exc)

    def send_ids(self, ids: list[int], *, here: bool = False) -> None:
        """Evaluate the stored items ``ids`` (in id order): the child reads their views
        (``reads``); ``here``, or where it fails, this process (``views_of``)."""
        assert self._views_of is not None, "send_ids needs views_of"
        self._sent.append((ids,) if here else ids)
        if self._proc is None or here:
            return
        try:
            self._write(pickle.dumps(ids, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            self._fail(exc)

    def receive(self) -> list[RuleOutcome]:
        """The outcomes of the oldest batch sent and not yet received, in its order."""
        sent = self._sent.popleft()
        if isinstance(sent, tuple) and len(sent) == 1:  # ids evaluated here (``send_ids``)
            sent = sent[0]
        elif self._proc is not None:
            try:
                read, outcomes, disabled = pickle.loads(self._read())
                if isinstance(sent, list) and read != sent:
                    raise LookupError(f"it read {len(read)} of {len(sent)} items")
            except (OSError, EOFError, pickle.UnpicklingError, LookupError) as exc:
                self._fail(exc)
            else:
                by_number = {r.number: r for r in self.rules.rules}
                for number, key in disabled:
                    self.rules._disable(by_number[number], key)
                return [RuleOutcome(d, t, c) for d, t, c in outcomes]
        if isinstance(sent, list):
            assert self._views_of is not None
            read, views = self._views_of(sent)
            if list(read) != sent:
                raise LookupError(
                    f"stored items gone while re-applying: read {len(read)} of {len(sent)}"
                )
            return [apply_rules(self.rules, view) for view in views]
        views, texts = sent
        return [
            apply_rules(self.rules, view if text is None else replace(view, text_utf8=text))
            for view, text in zip(views, texts, strict=True)
        ]

    def close(self) -> None:
        """End the child (its stdin closed: it exits) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, exc: BaseException) -> None:
        """The child is gone or unusable: every batch from here on is evaluated here."""
        if self._proc is not None:
            code = self._proc.poll()
            log.warning("rules evaluated here: their child process failed (%r, exit %s)", exc, code)
            with contextlib.suppress(OSError):
                self._proc.kill()
            self.close()

    def _write(self, *parts: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        pipes.write_message(self._proc.stdin.fileno(), *parts)

    def _read(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        return pipes.read_message(self._proc.stdout.fileno())


def _utf8(view: ItemView) -> bytes | None:
    """The view's text as UTF-8, where it has one."""
    if view.text_utf8 is not None:
        return view.text_utf8
    return None if view.text is None else view.text.encode()


def _drain(stdin: IO[bytes], inbox: queue.SimpleQueue[bytes | None]) -> None:
    """Read each message as it comes (the parent never waits on a full pipe while this
    process writes its answer); None at EOF."""
    fd = stdin.fileno()
    try:
        while True:
            inbox.put(pipes.read_message(fd))
    except (EOFError, OSError):
        inbox.put(None)


def child_main() -> None:
    """The child's loop: the rules, then batches of views in; their outcomes out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)  # the parent logs what this process tells it
    from aggregator.rules import rules_from_json

    # answers go out on a private copy of fd 1; anything a library prints goes to stderr
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_drain, args=(sys.stdin.buffer, inbox), daemon=True).start()
    first = inbox.get()
    if first is None:
        return
    said, digest, reading = pickle.loads(first)
    rules = rules_from_json(said)
    if rules.digest != digest:
        sys.exit(f"rules child: the rules compiled again differ ({rules.digest} != {digest})")
    # a batch makes no cycles: its views and outcomes go when the next comes (as in the
    # parent, rulings.reapply), so no collection walks them
    gc.disable()
    if reading is None:
        _evaluate_sent(rules, inbox, stdout)
        return
    from aggregator.store.rulings import snapshot_views  # the store's reading, in this process

    with snapshot_views(reading) as views_of:
        _evaluate_read(rules, inbox, stdout, views_of)


def _evaluate_sent(
    rules: RuleSet, inbox: queue.SimpleQueue[bytes | None], stdout: IO[bytes]
) -> None:
    """Batches of views (pickled) and their texts (UTF-8) in, their outcomes out."""
    told: set[int] = set()
    while (message := inbox.get()) is not None:
        size = int.from_bytes(message[: pipes.HEADER], "big")
        values, lengths = pickle.loads(message[pipes.HEADER : pipes.HEADER + size])
        blob = memoryview(message)[pipes.HEADER + size :]
        views: list[ItemView] = []
        at = 0
        for one, length in zip(values, lengths, strict=True):
            text = None
            if length >= 0:
                text = bytes(blob[at : at + length])
                at += length
            views.append(ItemView(**dict(zip(_NAMES, one, strict=True)), text_utf8=text))
        _answer(rules, views, None, told, stdout)


def _evaluate_read(
    rules: RuleSet, inbox: queue.SimpleQueue[bytes | None], stdout: IO[bytes], views_of: ViewsOf
) -> None:
    """Batches of ids in; their views read here, their ids as read and outcomes out."""
    told: set[int] = set()
    while (message := inbox.get()) is not None:
        read, views = views_of(pickle.loads(message))
        _answer(rules, views, list(read), told, stdout)


def _answer(
    rules: RuleSet,
    views: Sequence[ItemView],
    read: list[int] | None,
    told: set[int],
    stdout: IO[bytes],
) -> None:
    """The outcomes of ``views`` to the parent (with the ids ``read``), and the rules
    disabled over their budget since the last answer (``told``: those said before)."""
    outcomes: list[tuple[bool, str, tuple[str, ...]]] = []
    disabled: list[tuple[int, str]] = []  #: (rule, the item it ran over its budget on)
    for view in views:
        outcome = apply_rules(rules, view)
        outcomes.append((outcome.dropped, outcome.title, outcome.categories))
        if len(rules._disabled) > len(told):
            new = [n for n in rules.disabled if n not in told]
            told.update(new)
            disabled += [(n, view.key) for n in new]
    data = pickle.dumps((read, outcomes, disabled), protocol=pickle.HIGHEST_PROTOCOL)
    stdout.write(len(data).to_bytes(pipes.HEADER, "big") + data)
    stdout.flush()
