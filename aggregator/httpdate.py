"""HTTP-dates (RFC 9110 §5.6.7): read for Retry-After, Expires and If-Modified-Since.

One reader for the fetch side (scheduling) and the serve side (conditional
requests), so both accept the same three forms and read a zone-less date as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_http_date(value: str | bytes | None) -> datetime | None:
    """An HTTP-date, any of its three forms, as an aware datetime; None when it is not one."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    try:
        when = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
