"""The sandbox's clock and its ISO-8601 times (``2017-01-01T00:00:00Z``), as the platform writes them."""

from __future__ import annotations

from datetime import datetime, timezone

from ..isotime import format_time


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """``2017-01-01T00:00:00Z``."""
    return format_time(moment)


def parse_time(value: str) -> datetime | None:
    """Parse an ISO-8601 date or date-time (``Z`` or offset, or naive = UTC); None if it is not one."""
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit():
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
