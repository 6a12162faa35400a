"""The embedded central system's database: one SQLite file in CSMS_DATA_DIR.

One connection, used from one thread (SQLite connections belong to one), so every store's
work is serialized off the event loop. WAL with `synchronous=FULL`: a transaction that
committed survives a `kill -9` and a power cut.
"""

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="csms-sqlite")
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        await self.run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self.run(self._db.close)
            self._db = None
        self._thread.shutdown()

    async def run(self, work: Callable[[], T]) -> T:
        """`work` in the database's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    @property
    def connection(self) -> sqlite3.Connection:
        """For work running in the database's thread only."""
        assert self._db is not None, "the database is not open"
        return self._db

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one SQLite transaction: all of it or none (call it in the thread)."""
        db = self.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
                db.execute("ROLLBACK")
            raise
        return result

    async def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one SQLite transaction, in the database's thread."""
        return await self.run(lambda: self.transaction(work))
