"""The command queue in the embedded database (CSMS_DATA_DIR): a command the API accepted
(202) is on disk, and a restart delivers what was queued, in order.

The queues are served from memory (`MemoryCommandStore`) and every change is written through
before it is acknowledged. A command marked sent when the process died is failed at the
next start, never sent twice: whether the station got it nobody knows.
"""

import collections
import json
import sqlite3
import time

from csms.state.commands import (
    FAILED,
    QUEUED,
    RETENTION,
    SENT,
    Command,
    MemoryCommandStore,
)
from csms.state.errors import Unavailable
from csms.storage.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    position REAL NOT NULL,  -- order in its station's queue (a requeued one goes first)
    queued INTEGER NOT NULL,
    expires REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_finished ON commands (queued, expires);
"""
RESTARTED = {"status": 504, "detail": "csms restarted before the station answered"}


class SqliteCommandStore(MemoryCommandStore):
    def __init__(self, database: Database) -> None:
        super().__init__()
        self._database = database
        self._head = self._tail = 0.0

    async def start(self) -> None:
        await self._database.run(lambda: self._database.connection.executescript(SCHEMA))
        rows = await self._database.transact(_load)
        for command, position in rows:
            self._records[command.id] = command
            if command.status == QUEUED:
                self._queues.setdefault(command.station_id, collections.deque()).append(command.id)
            self._head, self._tail = min(self._head, position), max(self._tail, position)

    async def close(self) -> None:
        return None

    async def add(self, command: Command) -> None:
        await super().add(command)  # QueueFull before anything is written
        self._tail += 1
        try:
            await self._database.transact(lambda db: _insert(db, command, self._tail))
        except sqlite3.Error as exc:
            self._queues[command.station_id].pop()
            if not self._queues[command.station_id]:
                del self._queues[command.station_id]
            del self._records[command.id]
            raise Unavailable(f"command not stored: {exc}") from exc

    async def requeue(self, command: Command) -> None:
        await super().requeue(command)
        self._head -= 1
        await self._write(command, self._head)

    async def save(self, command: Command) -> None:
        await super().save(command)
        await self._write(command, None)

    async def _write(self, command: Command, position: float | None) -> None:
        record = json.dumps(command.to_json())
        queued = int(command.status == QUEUED)
        if position is None:
            await self._database.transact(lambda db: db.execute(
                "UPDATE commands SET queued = ?, record = ? WHERE id = ?",
                (queued, record, command.id)))
        else:
            await self._database.transact(lambda db: db.execute(
                "UPDATE commands SET queued = ?, record = ?, position = ? WHERE id = ?",
                (queued, record, position, command.id)))


def _insert(db: sqlite3.Connection, command: Command, position: float) -> None:
    # Finished records past their retention go as new ones come.
    db.execute("DELETE FROM commands WHERE queued = 0 AND expires < ?",
               (time.time() - RETENTION,))
    db.execute("INSERT INTO commands VALUES (?, ?, 1, ?, ?)",
               (command.id, position, command.expires_at, json.dumps(command.to_json())))


def _load(db: sqlite3.Connection) -> list[tuple[Command, float]]:
    """Every kept command in queue order; the ones caught sent by a crash are failed."""
    rows = db.execute("SELECT record, position FROM commands ORDER BY position").fetchall()
    loaded = []
    for raw, position in rows:
        command = Command.from_json(json.loads(raw))
        if command.status == SENT:
            command.status, command.error = FAILED, dict(RESTARTED)
            command.updated_at = time.time()
            db.execute("UPDATE commands SET queued = 0, record = ? WHERE id = ?",
                       (json.dumps(command.to_json()), command.id))
        loaded.append((command, float(position)))
    return loaded
