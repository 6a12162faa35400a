"""The ledger's interface, its query and cursor, and the in-memory ledger.

Three stores keep the promise differently: SQLite (`csms.ledger.sqlite`, with
`CSMS_DATA_DIR`) and Redis (`csms.cluster.ledger`, cluster mode) write a record durably
before `update` returns; the memory ledger, used when neither is configured, keeps records
until the process ends (and says so at start-up).
"""

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from csms.ledger.model import ACTIVE, Transaction, instant

Change = Callable[[Transaction | None], Transaction]
MAX_LIMIT = 1000
MAX_MEMORY_RECORDS = 100_000  # ended ones beyond it go, oldest first


def sort_time(tx: Transaction) -> str:
    """When a record sorts and is filtered by: its start, or (no start seen) its latest
    message, in UTC so that strings compare as instants."""
    moment = tx.started_at or tx.updated_at
    if moment is None:
        return ""
    return instant(moment).astimezone(UTC).isoformat(timespec="microseconds")


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended: records sort by (sort_time, key)."""

    at: str
    key: str

    def encode(self) -> str:
        raw = json.dumps([self.at, self.key], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        """Raises ValueError on anything this did not encode."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, key = json.loads(raw)
        except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, TypeError,
                ValueError):
            raise ValueError("not a cursor from this API") from None
        if not isinstance(at, str) or not isinstance(key, str):
            raise ValueError("not a cursor from this API")
        return cls(at, key)

    @classmethod
    def after(cls, tx: Transaction) -> "Cursor":
        return cls(sort_time(tx), tx.key)


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    station_id: str | None = None
    status: str | None = None
    id_token: str | None = None
    since: datetime | None = None  # sort_time at or after
    until: datetime | None = None  # sort_time before
    after: Cursor | None = None
    limit: int = 100

    def bounds(self) -> tuple[str | None, str | None]:
        """since and until as sort_time strings."""
        def text(moment: datetime | None) -> str | None:
            if moment is None:
                return None
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return aware.astimezone(UTC).isoformat(timespec="microseconds")
        return text(self.since), text(self.until)

    def matches(self, tx: Transaction) -> bool:
        since, until = self.bounds()
        at = sort_time(tx)
        return ((self.station_id is None or tx.station_id == self.station_id)
                and (self.status is None or tx.status == self.status)
                and (self.id_token is None or tx.id_token == self.id_token)
                and (since is None or at >= since) and (until is None or at < until)
                and (self.after is None or (at, tx.key) > (self.after.at, self.after.key)))


class Ledger(Protocol):
    async def update(self, key: str, change: Change,
                     fingerprint: str | None = None) -> Transaction:
        """Apply `change` to the record (None if there is none yet) and store the result.
        With a `fingerprint` already stored (a retried 1.6 StartTransaction), return the
        record it started, unchanged. Raises `Unavailable` when it cannot be stored."""

    async def get(self, key: str) -> Transaction | None: ...

    async def query(self, query: Query) -> list[Transaction]:
        """Matching records in (sort_time, key) order, at most `query.limit`."""

    async def active(self, station_id: str) -> list[Transaction]:
        """The station's transactions not ended yet."""


class MemoryLedger:
    """Records in this process only: lost when it ends."""

    def __init__(self) -> None:
        self._records: dict[str, Transaction] = {}
        self._starts: dict[str, str] = {}  # fingerprint -> key
        self._fingerprints: dict[str, str] = {}  # key -> fingerprint
        self._active: dict[str, set[str]] = {}

    async def update(self, key: str, change: Change,
                     fingerprint: str | None = None) -> Transaction:
        if fingerprint is not None and fingerprint in self._starts:
            return self._records[self._starts[fingerprint]]
        record = change(self._records.get(key))
        self._records[key] = record
        if fingerprint is not None:
            self._starts[fingerprint] = key
            self._fingerprints[key] = fingerprint
        keys = self._active.setdefault(record.station_id, set())
        if record.status == ACTIVE:
            keys.add(key)
        else:
            keys.discard(key)
        if len(self._records) > MAX_MEMORY_RECORDS:
            self._forget_one()
        return record

    def _forget_one(self) -> None:
        oldest = next((k for k, tx in self._records.items() if tx.status != ACTIVE), None)
        if oldest is not None:
            del self._records[oldest]
            fingerprint = self._fingerprints.pop(oldest, None)
            if fingerprint is not None:
                del self._starts[fingerprint]

    async def get(self, key: str) -> Transaction | None:
        return self._records.get(key)

    async def query(self, query: Query) -> list[Transaction]:
        found = sorted((tx for tx in self._records.values() if query.matches(tx)),
                       key=lambda tx: (sort_time(tx), tx.key))
        return found[:query.limit]

    async def active(self, station_id: str) -> list[Transaction]:
        return [self._records[k] for k in sorted(self._active.get(station_id, ()))]
