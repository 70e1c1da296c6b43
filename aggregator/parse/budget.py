"""Run a parse in a child process that is killed when it overruns its budget.

feedparser is pure Python: a thread cannot be interrupted, and
``signal.setitimer`` only works on the main thread, while the daemon parses
on worker threads. Bounding the input is not enough either: feedparser's
lenient path runs at 40 KB/s on some ill-formed input (thousands of unclosed
``<a `` tags), so time is not a function of size. The one robust way to stop
a runaway parse is to kill the process doing it.

Children are warm interpreters kept in a small pool (``subprocess``: safe
from any thread, no fork of a threaded parent, no re-import of the caller's
``__main__`` as multiprocessing would do). Each reads pickled calls on stdin
and answers on stdout, so a parse costs a few milliseconds of IPC, not an
interpreter start. A child that overruns is killed and replaced; children run
under an address-space limit, in their own session (a terminal's Ctrl-C is
for the parent), and exit when the parent goes away (EOF on stdin).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aggregator import pipes
from aggregator.errors import ParseError, Unparseable

T = TypeVar("T")

#: bodies up to this size are parsed in the calling thread, larger ones in a warm
#: child process under the time budget. Parse time is not a function of size
#: (feedparser reads thousands of unclosed tags at 20-40 KB/s), so this is kept
#: small: the worst input we know of (3,000 unclosed tags) takes 0.3-0.7 s.
INLINE_MAX_BYTES = 16 * 1024
#: address-space cap of a parse child (bytes); a 10 MiB feed needs ~300 MiB
MEMORY_LIMIT = 2 * 1024**3
#: children parsing at once: one per core (more only trade CPU for start-up imports);
#: threads beyond that wait for a warm child instead of starting a new interpreter
MAX_CHILDREN = max(2, os.cpu_count() or 2)
#: children kept warm between calls (~30 MB each)
MAX_IDLE = MAX_CHILDREN
#: calls one child serves before it is replaced: each start costs ~0.3 s of CPU importing
#: the parsers, and a child's heap stays flat over 1,000 bench feeds (issue 19)
MAX_CALLS = 1000
#: a child whose peak resident set passed this is replaced after the call that grew it
#: (one 10 MiB feed needs ~300 MiB, which the allocator may keep)
RETIRE_RSS = 256 * 1024**2

_CHILD = "from aggregator.parse.budget import child_main; child_main()"


def run_with_budget(func: Callable[..., T], *args: Any, timeout: float) -> T:
    """``func(*args)`` in a child; raises ``Unparseable`` when it takes over ``timeout`` s.

    ``func`` must be a module-level function and its arguments and result
    picklable. A ``ParseError`` raised in the child is raised here as it was.
    Where no child can be started at all, ``func`` runs here, without a bound.
    """
    return _POOL.run(func, args, timeout)


def prewarm() -> None:
    """Start one child now (its imports run in its own process, this returns at once).

    For a long-lived process: the first large body then finds an interpreter
    ready instead of waiting ~1 s for one to import the parsers.
    """
    _POOL.prewarm()


class _Child:
    """One warm interpreter and the pipes to it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            start_new_session=True,
        )
        self.calls = 0

    def call(self, payload: bytes, deadline: float) -> tuple[bool, object, bool]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.calls += 1
        pipes.write_message(self.proc.stdin.fileno(), payload)
        out = self.proc.stdout.fileno()
        answer: tuple[bool, object, bool] = pickle.loads(pipes.read_message(out, deadline))
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> int | None:
        """Kill and reap; the exit code (negative: the signal that ended it)."""
        code = self.proc.poll()
        if code is None:
            self.proc.kill()
            code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return code


class _Pool:
    def __init__(self) -> None:
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CHILDREN)

    def run(self, func: Callable[..., T], args: tuple[Any, ...], timeout: float) -> T:
        payload = pickle.dumps((func, args), protocol=pickle.HIGHEST_PROTOCOL)
        with self._slots:  # the budget starts once a child is ours, not while waiting
            return self._run(func, args, payload, time.monotonic() + timeout, timeout)

    def _run(
        self,
        func: Callable[..., T],
        args: tuple[Any, ...],
        payload: bytes,
        deadline: float,
        timeout: float,
    ) -> T:
        try:
            child = self._take()
        except OSError:  # no interpreter to start (embedded, no fork): parse here, unbounded
            return func(*args)
        try:
            ok, value, retire = child.call(payload, deadline)
        except TimeoutError:
            child.close()
            raise Unparseable(f"parse exceeded {timeout:g}s") from None
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            code = child.close()
            raise Unparseable(f"parser process failed (exit {code})") from exc
        except BaseException:
            child.close()
            raise
        self._give_back(child, retire)
        if ok:
            return value  # type: ignore[return-value]
        raise value  # type: ignore[misc]

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive():
                    return child
                child.close()
        return _Child()

    def prewarm(self) -> None:
        with self._lock:
            if self._idle:
                return
            with contextlib.suppress(OSError):  # none to start: calls parse in-process
                self._idle.append(_Child())

    def _give_back(self, child: _Child, retire: bool) -> None:
        with self._lock:
            keep = not retire and child.calls < MAX_CALLS and len(self._idle) < MAX_IDLE
            if keep and child.alive():
                self._idle.append(child)
                return
        child.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()


_POOL = _Pool()
atexit.register(_POOL.close)


def child_main() -> None:
    """The child's loop: length-prefixed pickled calls in, (ok, value, retire) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit is in force
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import aggregator.parse.feed  # noqa: F401 - warm up before the first call

    # Answers go out on a private copy of fd 1; anything a library prints goes to stderr.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    while True:
        header = stdin.read(pipes.HEADER)
        if len(header) < pipes.HEADER:
            return  # the parent has gone
        func, args = pickle.loads(stdin.read(int.from_bytes(header, "big")))
        retire = False
        result: object
        try:
            ok, result = True, func(*args)
        except ParseError as exc:
            ok, result = False, exc
        except MemoryError:
            ok, result, retire = False, Unparseable("parse exceeded the memory limit"), True
        except Exception as exc:  # anything else: a document that breaks the parser
            ok, result, retire = False, Unparseable(f"parser failed: {exc!r}"), True
        retire = retire or _peak_rss() > RETIRE_RSS
        data = pickle.dumps((ok, result, retire), protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(len(data).to_bytes(pipes.HEADER, "big") + data)
        stdout.flush()
        if retire:
            return


def _peak_rss() -> int:
    """This process's peak resident set, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
