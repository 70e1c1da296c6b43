"""Length-prefixed messages on the pipes to this program's child interpreters.

The parse budget's children (parse/budget.py) and the rules' evaluator
(rules/child.py) talk to their parent the same way: each message is its
length in ``HEADER`` bytes, big-endian, then its bytes. One copy of the
reading and writing, so a fix to either reaches both.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import time

#: bytes of a message's length
HEADER = 8
#: buffers per writev (Linux's IOV_MAX)
_IOV = 1024


def write_message(fd: int, *parts: bytes) -> None:
    """One message: the length of ``parts`` together, then each from where it is (no copy
    of them joined: a batch's texts are sent as they were read)."""
    _write_all(fd, [sum(map(len, parts)).to_bytes(HEADER, "big"), *parts])


def read_message(fd: int, deadline: float | None = None) -> bytes:
    """The next message's bytes; ``EOFError`` where the pipe ends first, ``TimeoutError``
    at ``deadline`` (``time.monotonic``; None: as long as it takes)."""
    return read_exactly(fd, int.from_bytes(read_exactly(fd, HEADER, deadline), "big"), deadline)


def read_exactly(fd: int, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes from a pipe (errors as ``read_message``)."""
    parts: list[bytes] = []
    with contextlib.ExitStack() as stack:
        selector = None
        if deadline is not None:
            selector = stack.enter_context(selectors.DefaultSelector())
            selector.register(fd, selectors.EVENT_READ)
        while size:
            if selector is not None and deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError
            part = os.read(fd, min(size, 1 << 20))
            if not part:
                raise EOFError
            parts.append(part)
            size -= len(part)
    return b"".join(parts)


def _write_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts if p]
    first = 0
    while first < len(views):
        done = os.writev(fd, views[first : first + _IOV])
        while first < len(views) and done >= len(views[first]):
            done -= len(views[first])
            first += 1
        if done:
            views[first] = views[first][done:]
