"""The current time as OCPP writes it: RFC 3339, UTC, millisecond precision."""

import re
import time
from datetime import UTC, datetime

_last: tuple[int, str] = (0, "")


def rfc3339(seconds: float | None) -> str | None:
    """A Unix time as OCPP writes times (the API's times too); None stays None."""
    if seconds is None:
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def now() -> str:
    # Formatting a datetime costs more than the rest of a Heartbeat; under load many
    # answers fall in the same millisecond, so reuse the last string for it.
    global _last
    ms = int(time.time() * 1000)
    if ms != _last[0]:
        text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        _last = (ms, text.replace("+00:00", "Z"))
    return _last[1]


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time (a zone required; `t`/`z` in any case; a leap second read as
    :59) as an aware datetime; ValueError otherwise."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    day, minutes, seconds, fraction, zone = match.groups()
    seconds = "59" if seconds == "60" else seconds
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{day}T{minutes}:{seconds}{(fraction or '')[:7]}{zone}")
