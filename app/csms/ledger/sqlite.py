"""The ledger in SQLite (CSMS_DATA_DIR): a record is durable when `update` returns.

Writes are group-committed: every change queued while the previous commit was on disk goes
into the next SQLite transaction, so a thousand stations' messages cost a handful of fsyncs,
not a thousand, and a message waits at most one commit longer than it would alone. The work
runs in the database's thread (`csms.storage.sqlite`), off the event loop.
"""

import asyncio
import sqlite3
from typing import Any

from csms.ledger.batching import GroupCommit, Op
from csms.ledger.model import ACTIVE, Transaction
from csms.ledger.store import MAX_LIMIT, Query, sort_time
from csms.state.errors import Unavailable
from csms.state.transactions import INT32_MAX, MemoryTransactionIds
from csms.storage.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    key TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    status TEXT NOT NULL,
    id_token TEXT,
    at TEXT NOT NULL,   -- sort_time: its start (else latest message) in UTC
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_at ON transactions (at, key);
CREATE INDEX IF NOT EXISTS transactions_station ON transactions (station, status, at);
CREATE INDEX IF NOT EXISTS transactions_token ON transactions (id_token, at);
CREATE TABLE IF NOT EXISTS starts (  -- 1.6 StartTransaction fingerprints, for retries
    fingerprint TEXT PRIMARY KEY,
    key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (  -- 1.6 transaction ids: the top of the last block
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
ID_BLOCK = 100
RECENT = 20_000  # records kept as last written: about one per active transaction


class SqliteLedger(GroupCommit):
    store_errors = (sqlite3.Error,)

    def __init__(self, database: Database) -> None:
        super().__init__()
        self._database = database
        # The last active records written (only the database's thread touches it).
        self._recent: dict[str, Transaction] = {}
        self._ids = range(0)
        self._reserving: asyncio.Lock | None = None

    async def start(self) -> None:
        await self._database.run(lambda: self._database.connection.executescript(SCHEMA))
        self._start_writer()

    async def close(self) -> None:
        await self._stop_writer()

    @property
    def _db(self) -> sqlite3.Connection:
        return self._database.connection

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self._database.run(lambda: fn(*args))

    # -- writes: `update` (GroupCommit) queues a change; a batch is one SQLite transaction --

    async def _commit(self, batch: list[Op]) -> list[Transaction | Exception]:
        return await self._database.run(lambda: self._write(batch))

    def _write(self, batch: list[Op]) -> list[Transaction | Exception]:
        written: dict[str, Transaction] = {}
        results = self._database.transaction(lambda db: self._apply(db, batch, written))
        # Committed: these records are the ones the next changes start from (as clones:
        # a record handed to a caller is never changed under it).
        for key, record in written.items():
            self._recent.pop(key, None)
            if record.status == ACTIVE:  # an ended one is rarely touched again
                self._recent[key] = record
        while len(self._recent) > RECENT:
            del self._recent[next(iter(self._recent))]
        return results

    def _apply(self, db: sqlite3.Connection, batch: list[Op],
               written: dict[str, Transaction]) -> list[Transaction | Exception]:
        """The whole batch in order, in one SQLite transaction: all of it or none. A change
        that raises fails alone (its handler answers InternalError); the others are kept."""
        touched: dict[str, Transaction] = {}
        results: list[Transaction | Exception] = []
        for op in batch:
            if op.fingerprint is not None:
                row = db.execute("SELECT key FROM starts WHERE fingerprint = ?",
                                 (op.fingerprint,)).fetchone()
                if row is not None:
                    results.append(touched.get(row[0]) or _known(self._load(row[0])))
                    continue
            current = touched.get(op.key) or self._load(op.key, clone=True)
            try:
                record = op.change(current)
            except Exception as exc:  # reported to its own caller
                results.append(exc)
                continue
            if op.fingerprint is not None:
                db.execute("INSERT INTO starts VALUES (?, ?)", (op.fingerprint, op.key))
            touched[op.key] = record
            results.append(record)
        for record in touched.values():
            written[record.key] = record
            # An upsert, not a replace: the indexes change only where their columns did.
            db.execute("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET status = excluded.status, id_token = excluded.id_token, "
                       "at = excluded.at, record = excluded.record",
                       (record.key, record.station_id, record.status, record.id_token,
                        sort_time(record), record.dumps()))
        return results

    def _load(self, key: str, clone: bool = False) -> Transaction | None:
        recent = self._recent.get(key)
        if recent is not None:  # written lately: no query, no decoding
            return recent.clone() if clone else recent
        row = self._db.execute("SELECT record FROM transactions WHERE key = ?",
                               (key,)).fetchone()
        return Transaction.loads(row[0]) if row else None

    # -- 1.6 transaction ids (csms.state.transactions.TransactionIds) -------------------

    async def next_id(self) -> int:
        """Unique and rising across restarts and crashes: blocks of ids are reserved on disk
        before any of them is given (a crash skips the rest of a block)."""
        if not self._ids:
            self._reserving = self._reserving or asyncio.Lock()
            async with self._reserving:
                if not self._ids:
                    try:
                        top = await self._database.transact(_reserve)
                    except sqlite3.Error as exc:
                        raise Unavailable(f"no transaction id: {exc}") from exc
                    self._ids = range(top - ID_BLOCK + 1, top + 1)
        value, self._ids = self._ids[0], self._ids[1:]
        if value > INT32_MAX:
            raise OverflowError("transaction ids exhausted the 32-bit range")
        return value

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> Transaction | None:
        result: Transaction | None = await self._run(self._load, key)
        return result

    async def query(self, query: Query) -> list[Transaction]:
        found: list[Transaction] = await self._run(self._select, query)
        return found

    async def active(self, station_id: str) -> list[Transaction]:
        return await self.query(Query(station_id=station_id, status=ACTIVE, limit=MAX_LIMIT))

    def _select(self, query: Query) -> list[Transaction]:
        where, args = [], list[Any]()
        for column, value in (("station", query.station_id), ("status", query.status),
                              ("id_token", query.id_token)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        since, until = query.bounds()
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at < ?")
            args.append(until)
        if query.after is not None:
            where.append("(at, key) > (?, ?)")
            args += [query.after.at, query.after.key]
        sql = "SELECT record FROM transactions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._db.execute(sql + " ORDER BY at, key LIMIT ?", (*args, query.limit))
        return [Transaction.loads(row[0]) for row in rows]


def _known(record: Transaction | None) -> Transaction:
    if record is None:  # a fingerprint always points at a stored record
        raise LookupError("a stored start fingerprint has no record")
    return record


def _reserve(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM counters WHERE name = 'txid'").fetchone()
    # Never below the clock-based start of the in-memory allocator: ids keep rising for a
    # server that ran without a data folder before.
    top: int = max(row[0] if row else 0, MemoryTransactionIds().first - 1) + ID_BLOCK
    db.execute("INSERT OR REPLACE INTO counters VALUES ('txid', ?)", (top,))
    return top
