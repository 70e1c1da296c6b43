"""Run a parse in a child process that is killed when it overruns its budget.

feedparser is pure Python: a thread cannot be interrupted, and
``signal.setitimer`` only works on the main thread, while the daemon parses
on worker threads. The one robust way to stop a runaway parse is to kill the
process doing it. The child is a fresh interpreter (``subprocess``, safe from
any thread, no fork of a threaded parent, no re-import of the caller's
``__main__`` as multiprocessing would do) that reads the pickled call on
stdin and writes the pickled result on stdout; it runs under an
address-space limit, so a hostile document cannot take the daemon's memory
either. Starting it costs about half a second, so ``feed.parse_feed`` sends
only large bodies here (see ``feed.INLINE_MAX_BYTES``).
"""

from __future__ import annotations

import contextlib
import pickle
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from aggregator.errors import ParseError, Unparseable

T = TypeVar("T")

#: address-space cap of a parse child (bytes); a 10 MiB feed needs ~300 MiB
MEMORY_LIMIT = 2 * 1024**3

_CHILD = "from aggregator.parse.budget import child_main; child_main()"


def run_with_budget(func: Callable[..., T], *args: Any, timeout: float) -> T:
    """``func(*args)`` in a child; raises ``Unparseable`` when it takes over ``timeout`` s.

    ``func`` must be a module-level function and its arguments picklable. A
    ``ParseError`` raised in the child is raised here as it was.
    """
    if not sys.executable:  # embedded interpreter: nothing to start, parse here
        return func(*args)
    payload = pickle.dumps((func, args), protocol=pickle.HIGHEST_PROTOCOL)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=payload,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        raise Unparseable(f"parse exceeded {timeout:g}s") from None
    if done.returncode != 0 or not done.stdout:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise Unparseable(f"parser process failed (exit {done.returncode}): {last[0][:200]}")
    ok, value = pickle.loads(done.stdout)  # our own child's answer
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def child_main() -> None:
    """The child's side: one pickled call on stdin, one pickled (ok, value) on stdout."""
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit is in force
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    func, args = pickle.load(sys.stdin.buffer)
    result: tuple[bool, object]
    try:
        result = (True, func(*args))
    except ParseError as exc:
        result = (False, exc)
    except MemoryError:
        result = (False, Unparseable("parse exceeded the memory limit"))
    except Exception as exc:  # anything else: a document that breaks the parser
        result = (False, Unparseable(f"parser failed: {exc!r}"))
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
