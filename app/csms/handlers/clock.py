"""The current time as OCPP writes it: RFC 3339, UTC, millisecond precision."""

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
