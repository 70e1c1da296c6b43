"""Run one command as a child and measure it: wall, CPU (user+sys), peak RSS.

CPU and ``ru_maxrss`` come from ``os.wait4`` on the child, so they cover the
child and every descendant it waited for (``ru_maxrss`` is then the largest
single process, not the sum). A sampler also adds up the RSS of the whole
process tree every 0.2 s, for pollers that fan out into processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Measured:
    cmd: list[str]
    returncode: int  #: negative: killed by that signal; timed_out tells a timeout apart
    timed_out: bool
    wall: float  #: seconds
    user: float
    sys: float
    maxrss_mb: float  #: ru_maxrss of the child (largest waited-for process)
    tree_rss_mb: float  #: sampled peak of the sum over the child's process tree
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys


_current: subprocess.Popen[bytes] | None = None


def kill_current() -> None:
    """Kill the running child's process group (for Ctrl-C and SIGTERM in the runner)."""
    if _current is not None and _current.returncode is None:
        _killpg(_current.pid)


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
    log: Path | None = None,
) -> Measured:
    """Run ``cmd`` to completion (or ``timeout``, then kill its group) and measure it."""
    global _current
    out_path = log or Path(os.devnull)
    with (
        open(str(out_path) + ".out" if log else os.devnull, "wb+") as out,
        open(str(out_path) + ".err" if log else os.devnull, "wb+") as err,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        _current = proc
        timed_out = threading.Event()
        done = threading.Event()
        peak = [0]

        def watchdog() -> None:
            if not done.wait(timeout):
                timed_out.set()
                _killpg(proc.pid)

        def sampler() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

        threads = [threading.Thread(target=f, daemon=True) for f in (watchdog, sampler)]
        for t in threads:
            t.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            done.set()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        _killpg(proc.pid)  # leftovers of the group, if any
        for t in threads:
            t.join()
        _current = None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return Measured(
        cmd=cmd,
        returncode=proc.returncode,
        timed_out=timed_out.is_set(),
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,
        tree_rss_mb=max(peak[0], usage.ru_maxrss) / 1024,
        stdout=stdout,
        stderr=stderr,
    )


def tree_stats(root: int) -> dict[int, list[bytes]]:
    """The /proc stat fields (after the name) of ``root`` and its descendants, by pid."""
    parents: dict[int, int] = {}
    stats: dict[int, list[bytes]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid = int(name)
        parents[pid] = int(fields[1])
        stats[pid] = fields
    tree = {}
    for pid, fields in stats.items():
        p = pid
        while p and p != root:
            p = parents.get(p, 0)
        if p == root:
            tree[pid] = fields
    return tree


def _tree_rss_kb(root: int) -> int:
    """Sum of RSS over ``root`` and its descendants, from /proc."""
    return sum(int(fields[21]) * PAGE_KB for fields in tree_stats(root).values())


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
