"""Replace output files atomically, and only when their bytes change.

A reader (the HTTP server, nginx, a feed reader on a shared disk) sees the old
file or the new one, never half of one: write a temporary file in the same
folder, fsync it, ``os.replace`` it over the old, fsync the folder.

A writer killed with SIGKILL leaves its temporary file behind; the name
carries the writer's pid, and the first write of a process into a folder
removes the ones whose writer is gone (or that are over an hour old).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
import tempfile
import threading
import time
from pathlib import Path

#: Mode of a new file: readable by the web server that serves ``output_dir``.
NEW_FILE_MODE = 0o644
#: ``.<name>.<pid>.<random>.tmp`` (older versions wrote ``.<name>.<random>.tmp``)
_TEMP_NAME = re.compile(r"^\..+?(?:\.(\d+))?\.[a-z0-9_]+\.tmp$")
#: a temporary file this old is abandoned whoever wrote it (a write takes milliseconds)
STALE_TEMP_SECONDS = 3600

_swept: set[str] = set()
_swept_lock = threading.Lock()


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except (FileNotFoundError, NotADirectoryError):
        return False


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX: the folder entry lives in the folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms that cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _writer_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def sweep_temp_files(folder: Path, now: float | None = None) -> int:
    """Remove temporary files left by killed writers in ``folder``; how many."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
            if old or (match.group(1) and _writer_gone(int(match.group(1)))):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _sweep_once(folder: Path) -> None:
    """The first write of this process into ``folder`` clears what killed writers left there."""
    key = os.fspath(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    sweep_temp_files(folder)


def replace_file(path: Path, data: bytes) -> bool:
    """Atomically make ``path`` hold ``data``; False (and no write at all) when it already does."""
    path = Path(path)
    if _same_bytes(path, data):
        return False
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    _sweep_once(folder)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(folder)
    return True


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with mtime 0 and no file name, so the same input gives the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def replace_with_gzip(path: Path, data: bytes) -> bool:
    """``replace_file`` plus a precompressed ``<name>.gz`` sibling; True when either changed.

    The ``.gz`` is replaced first: whoever sees the new plain file (its mtime
    and ETag) also finds the new compressed one. So a plain file that already
    holds ``data`` next to a ``.gz`` means the ``.gz`` is current too, and
    nothing is compressed (most rewrites of ``all.atom`` and the indexes).
    """
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if _same_bytes(path, data) and gz.exists():
        return False
    gz_changed = replace_file(gz, gzip_bytes(data))
    changed = replace_file(path, data)
    return changed or gz_changed
