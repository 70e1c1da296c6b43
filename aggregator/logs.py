"""Logging set-up that fits both a terminal and journald.

Under systemd, with stderr connected to the journal (``JOURNAL_STREAM``
names its device and inode, sd-daemon(3)), journald stamps every line
itself: we print no timestamp of our own and prefix the syslog priority
(``<4>``) so warnings and errors keep their level in the journal. Messages
carry their facts as ``key=value`` fields (``poll source=… status=ok new=3
duration=0.412``), so ``journalctl -u aggregator | grep source=x`` finds them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``; a traceback's lines are indented under it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{_PRIORITY.get(record.levelno, 6)}>" + text.replace("\n", "\n  ")


def journal_stream(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr) is the journal stream systemd handed us."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if journal_stream(sys.stderr):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("AGGREGATOR_LOG_LEVEL", level).upper())
    for noisy in ("urllib3", "apscheduler", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
