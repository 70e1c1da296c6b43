"""Log lines for people (text), for log shippers (JSON lines) and for journald.

Under systemd, with stderr connected to the journal (``JOURNAL_STREAM``
names its device and inode, sd-daemon(3)), journald stamps every line
itself: we print no timestamp of our own and prefix the syslog priority
(``<4>``) so warnings and errors keep their level in the journal. Elsewhere
a text line starts with an ISO 8601 timestamp with its offset. Messages carry
their facts as logfmt ``key=value`` fields (``poll source=… status=ok new=3
duration=0.412``; a value with spaces or quotes is quoted), so ``journalctl
-u aggregator | grep source=x`` finds them; ``log_format = "json"`` writes one
JSON object a line instead: ``ts``, ``level``, ``logger``, ``msg`` and the fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime
from typing import Any, TextIO

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
#: values written bare in logfmt; anything else is quoted
_BARE = re.compile(r"[^\s=\"\\]+")
FORMATS = ("text", "json")


def logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, float):
        text = f"{value:.3f}"
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def log_fields(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event k=v …`` (logfmt), keeping the fields for the JSON format."""
    if logger.isEnabledFor(level):
        text = " ".join([event, *(f"{k}={logfmt_value(v)}" for k, v in fields.items())])
        logger.log(level, "%s", text, extra={"event": event, "fields": fields})


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``; a traceback's lines are indented under it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{_PRIORITY.get(record.levelno, 6)}>" + text.replace("\n", "\n  ")


class TextFormatter(logging.Formatter):
    """``2026-12-03T09:27:01.123+08:00 INFO logger: message``, local time with its offset."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _timestamp(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, then the record's fields."""

    def __init__(self, priority: bool = False) -> None:
        super().__init__()
        self.priority = priority  #: journald: keep the level as a ``<p>`` prefix

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": getattr(record, "event", None) if fields else record.getMessage(),
        }
        if fields:
            doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        line = json.dumps(doc, ensure_ascii=False, default=str)
        return f"<{_PRIORITY.get(record.levelno, 6)}>{line}" if self.priority else line


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


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


_handler: logging.Handler | None = None


def setup_logging(level: str = "INFO", log_format: str = "text") -> None:
    """One handler on stderr for the whole process; the CLI sets level and format later."""
    global _handler
    _handler = logging.StreamHandler(sys.stderr)
    set_format(log_format)
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    set_level(level)
    for noisy in ("urllib3", "apscheduler", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())


def set_format(log_format: str) -> None:
    """``text`` or ``json``; under journald, text keeps journald's own shape."""
    if _handler is None:
        return
    journal = journal_stream(sys.stderr)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(priority=journal)
    elif journal:
        formatter = JournalFormatter("%(name)s: %(message)s")
    else:
        formatter = TextFormatter()
    _handler.setFormatter(formatter)
