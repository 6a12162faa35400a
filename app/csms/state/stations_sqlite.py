"""Station state in the embedded database (CSMS_DATA_DIR): boot info, connector statuses,
last meter values and configuration outcomes outlive a restart.

Served from memory (`MemoryStationStore`) and written behind: a station whose state changed
is written, whole, within `every` seconds, in one SQLite transaction with the others that
changed (a burst of status notifications is one write). A crash loses at most that last
moment, which the stations report again (status on reconnect, meter values as they come);
transactions are not station state and are written through, in the ledger.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
from typing import Any

from csms.state.stations import Boot, MemoryStationStore, StationState
from csms.storage.sqlite import Database

logger = logging.getLogger("csms.storage")
SCHEMA = """
CREATE TABLE IF NOT EXISTS stations (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""


def _to_json(state: StationState) -> str:
    data = dataclasses.asdict(state)
    data["boot"] = state.boot._asdict() if state.boot else None
    return json.dumps(data)


def _from_json(raw: str) -> StationState:
    data: dict[str, Any] = json.loads(raw)
    boot = data.pop("boot")
    return StationState(**data, boot=Boot(**boot) if boot else None)


class SqliteStationStore(MemoryStationStore):
    def __init__(self, database: Database, every: float = 0.5) -> None:
        super().__init__()
        self._database = database
        self._every = every
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._database.run(lambda: self._database.connection.executescript(SCHEMA))
        rows = await self._database.run(lambda: self._database.connection.execute(
            "SELECT id, state FROM stations").fetchall())
        for station_id, raw in rows:
            self._states[station_id] = _from_json(raw)
        self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(sqlite3.Error):
            await self.flush()

    def _state(self, station_id: str) -> StationState:
        self._dirty.add(station_id)  # every write goes through here
        return super()._state(station_id)

    async def flush(self) -> None:
        """Write the stations that changed; they stay dirty if it fails."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = [(sid, _to_json(self._states[sid])) for sid in dirty if sid in self._states]
        try:
            await self._database.transact(lambda db: db.executemany(
                "INSERT OR REPLACE INTO stations VALUES (?, ?)", rows))
        except sqlite3.Error:
            self._dirty |= dirty
            raise

    async def _flush_forever(self) -> None:
        warned = False
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.flush()
                warned = False
            except sqlite3.Error as exc:
                if not warned:
                    logger.warning("station state not written, kept in memory: %s", exc)
                    warned = True
