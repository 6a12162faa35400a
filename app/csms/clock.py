"""The current time as OCPP writes it: RFC 3339, UTC, millisecond precision."""

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
