"""ISO-8601 times as the platform writes them: one parser, one formatter (``2017-01-01T00:03:00Z``).

>>> format_time(parse_time("2017-01-01T10:03:00+1000"))
'2017-01-01T00:03:00Z'
"""

from __future__ import annotations

import datetime as dt
import re

#: the UTC form the platform and the Ruby SDK write
FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)$")
_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: str) -> dt.datetime:
    """Parse the ISO-8601 variants the platform and the old SDKs write; naive means UTC.

    Raises :class:`ValueError` for text that is not such a time or has no UTC equivalent.

    >>> parse_time("2017-01-01T00:03:00.000Z")
    datetime.datetime(2017, 1, 1, 0, 3, tzinfo=datetime.timezone.utc)
    >>> parse_time("2017-01-01T10:03:00+1000").isoformat()
    '2017-01-01T10:03:00+10:00'
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET.sub(r"\1\2:\3", text)
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    try:
        # "9999-12-31T23:59:59-01:00" parses but has no UTC form: refuse it here rather
        # than fail later in format_time() or timestamp()
        parsed.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range in UTC") from None
    return parsed


def format_time(value: dt.datetime) -> str:
    """``2017-01-01T00:03:00Z``: the UTC form the Ruby SDK writes."""
    return value.astimezone(dt.timezone.utc).strftime(FORMAT)
