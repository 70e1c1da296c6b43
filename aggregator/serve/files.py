"""The served files of ``output_dir``, held in memory with their answers made up front.

    request path ──file_name()──▶ a known name or None (a regex: no traversal possible)
    name ──FileCache.fresh()──▶ looked at < RECHECK_SECONDS ago ─▶ the cached CachedFile
                                stat: same (mtime_ns, size, inode) ─▶ the cached CachedFile
                                      changed ─▶ load(): file + fresh .gz twin, hash, headers

A CachedFile carries the ready ASGI messages for each answer (200 plain, 200
gzip, 304 for each), so a hit allocates nothing of ours.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import stat
import time
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aggregator.httpdate import parse_http_date
from aggregator.write import gzip_bytes

log = logging.getLogger("aggregator.serve")

#: The only names served: ``/``, ``/index.opml`` and ``/<category, all, health, status or
#: index>.<atom, rss, json or html>``.
_NAME = re.compile(r"/(?:(index\.opml|[a-z0-9_-]{1,100}\.(?:atom|rss|json|html)))?")

CONTENT_TYPES = {
    ".atom": b"application/atom+xml; charset=utf-8",
    ".rss": b"application/rss+xml; charset=utf-8",
    ".json": b"application/feed+json; charset=utf-8",
    ".opml": b"text/x-opml; charset=utf-8",
    ".html": b"text/html; charset=utf-8",
}

Message = dict[str, Any]
EMPTY_BODY: Message = {"type": "http.response.body", "body": b"", "more_body": False}


def file_name(path: str) -> str | None:
    """The output file a request path names, or None; ``/`` is ``index.html``."""
    m = _NAME.fullmatch(path)
    if m is None:
        return None
    return m.group(1) or "index.html"


@dataclass(frozen=True, slots=True)
class CachedFile:
    """One file as served: its bytes, validators and ready-made answers."""

    key: tuple[int, int, int]  #: (st_mtime_ns, st_size, st_ino) the bytes were read at
    body: bytes
    gz: bytes  #: the .gz twin when it matched, else compressed once here
    etag: bytes  #: strong, from the content: ``"<sha256 prefix>"``
    etag_gz: bytes  #: the gzip representation's own strong ETag (RFC 9110 8.8.3)
    last_modified: bytes  #: IMF-fixdate of st_mtime
    mtime: int  #: whole seconds, for If-Modified-Since
    start_200: Message
    start_200_gz: Message
    start_304: Message
    start_304_gz: Message
    body_msg: Message
    body_gz_msg: Message

    def not_modified(self, if_none_match: bytes | None, if_modified_since: bytes | None) -> bool:
        """RFC 9110 13.1.2 / 13.1.3: If-None-Match (weak compare) wins over If-Modified-Since."""
        if if_none_match is not None:
            if if_none_match == self.etag or if_none_match == self.etag_gz:
                return True
            return self._listed(if_none_match)
        if if_modified_since is not None:
            if if_modified_since == self.last_modified:
                return True
            since = parse_http_date(if_modified_since)
            return since is not None and self.mtime <= since.timestamp()
        return False

    def _listed(self, header: bytes) -> bool:
        for part in header.split(b","):
            tag = part.strip()
            if tag == b"*":
                return True
            if tag.startswith(b"W/"):
                tag = tag[2:]
            if tag == self.etag or tag == self.etag_gz:
                return True
        return False


def _read_gzip_twin(path: str, body: bytes) -> bytes | None:
    """The precompressed ``<name>.gz`` when it holds exactly ``body``, else None."""
    try:
        with open(path, "rb") as f:
            gz = f.read()
        if gzip.decompress(gz) == body:
            return gz
    except (OSError, EOFError, zlib.error):
        pass
    return None


def load(path: str, content_type: bytes, cache_control: bytes) -> CachedFile | None:
    """Read ``path`` (a regular file) and its twin; None when there is no such file."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            body = f.read()
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
            log.warning("cannot read %s: %s", path, exc)
        return None
    gz = _read_gzip_twin(path + ".gz", body)
    if gz is None:
        gz = gzip_bytes(body)
    digest = hashlib.sha256(body).hexdigest()[:32]
    etag = f'"{digest}"'.encode()
    etag_gz = f'"{digest}-gz"'.encode()
    last_modified = formatdate(st.st_mtime, usegmt=True).encode()
    # RFC 9110 15.4.5: a 304 repeats Cache-Control, ETag and Vary; Last-Modified adds
    # nothing next to an ETag, and each header costs time on the hottest answer.
    cache = [(b"cache-control", cache_control), (b"vary", b"accept-encoding")]
    typed = [(b"content-type", content_type), *cache, (b"last-modified", last_modified)]
    return CachedFile(
        key=(st.st_mtime_ns, st.st_size, st.st_ino),
        body=body,
        gz=gz,
        etag=etag,
        etag_gz=etag_gz,
        last_modified=last_modified,
        mtime=int(st.st_mtime),
        start_200=_start(200, [*typed, (b"etag", etag), (b"content-length", b"%d" % len(body))]),
        start_200_gz=_start(
            200,
            [
                *typed,
                (b"etag", etag_gz),
                (b"content-encoding", b"gzip"),
                (b"content-length", b"%d" % len(gz)),
            ],
        ),
        start_304=_start(304, [*cache, (b"etag", etag)]),
        start_304_gz=_start(304, [*cache, (b"etag", etag_gz)]),
        body_msg={"type": "http.response.body", "body": body, "more_body": False},
        body_gz_msg={"type": "http.response.body", "body": gz, "more_body": False},
    )


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


#: Seconds a file is served from memory before the next stat looks at it again. Measured:
#: the stat was two thirds of this module's time per 304 (bench/serve_bench.py); a reader
#: may get the previous version this long after a replace, against a max-age of minutes.
RECHECK_SECONDS = 0.25


class FileCache:
    """Known output files by name; a stat (at most every RECHECK_SECONDS) decides on a reread."""

    def __init__(self, root: Path, cache_max_age: int, recheck: float = RECHECK_SECONDS) -> None:
        self.root = os.fspath(root)
        self.cache_control = b"max-age=%d" % cache_max_age
        self.recheck = recheck
        #: name -> (the file, monotonic time after which it is looked at again)
        self._files: dict[str, tuple[CachedFile, float]] = {}

    def fresh(self, name: str) -> tuple[CachedFile | None, bool]:
        """(the cached file if still current, else None; whether a file of that name exists)."""
        entry = self._files.get(name)
        now = time.monotonic()
        if entry is not None and now < entry[1]:
            return entry[0], True
        try:
            st = os.stat(self.root + "/" + name)
        except OSError:
            self._files.pop(name, None)
            return None, False
        if entry is not None and entry[0].key == (st.st_mtime_ns, st.st_size, st.st_ino):
            self._files[name] = (entry[0], now + self.recheck)
            return entry[0], True
        return None, True

    def load(self, name: str) -> CachedFile | None:
        """Read ``name`` again (blocking: call it off the event loop) and keep it."""
        suffix = name[name.rindex(".") :]
        cached = load(self.root + "/" + name, CONTENT_TYPES[suffix], self.cache_control)
        if cached is None:
            self._files.pop(name, None)
        else:
            self._files[name] = (cached, time.monotonic() + self.recheck)
        return cached


def accepts_gzip(header: bytes | None, _memo: dict[bytes, bool] = {}) -> bool:  # noqa: B006
    """Whether an Accept-Encoding value accepts gzip (RFC 9110 12.5.3; q=0 refuses).

    The few distinct values clients send are remembered (at most 256 of them).
    """
    if not header:
        return False
    known = _memo.get(header)
    if known is None:
        known = _parse_accept_gzip(header)
        if len(_memo) < 256:
            _memo[header] = known
    return known


def _parse_accept_gzip(header: bytes) -> bool:
    gzip_q: float | None = None
    star_q: float | None = None
    for part in header.lower().split(b","):
        coding, _, params = part.partition(b";")
        coding = coding.strip()
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding in (b"gzip", b"x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == b"*":
            star_q = q
    chosen = gzip_q if gzip_q is not None else star_q
    return chosen is not None and chosen > 0
