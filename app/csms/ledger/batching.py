"""Group commit, shared by the durable ledgers: changes queue while the previous batch is
being written, then go out together; each caller waits for its own change's outcome.

A batch's write is all or nothing. Whatever stops it (the store unreachable, a full disk, a
bug) fails that batch's changes with `Unavailable`, never the writer: the next batch runs.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from csms.ledger.model import Transaction
from csms.ledger.store import Change
from csms.state.errors import Unavailable

logger = logging.getLogger("csms.ledger")


@dataclass(slots=True)
class Op:
    key: str
    change: Change
    fingerprint: str | None
    done: "asyncio.Future[Transaction]" = field(repr=False)


class GroupCommit:
    """Subclasses write a batch in `_commit` and name their store's own errors in
    `store_errors` (anything else is logged as a bug)."""

    store_errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._queue: list[Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # batches written (for the bench: changes per commit)

    def _start_writer(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    async def _stop_writer(self) -> None:
        if self._task is not None:
            while not self._task.done():  # a client library can swallow one cancellation
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.1)
        for op in self._queue:  # never written: the stations will retry
            if not op.done.done():
                op.done.set_exception(Unavailable("the ledger is closing"))
        self._queue.clear()

    async def update(self, key: str, change: Change,
                     fingerprint: str | None = None) -> Transaction:
        op = Op(key, change, fingerprint, asyncio.get_running_loop().create_future())
        self._queue.append(op)
        self._wake.set()
        return await op.done

    async def _commit(self, batch: list[Op]) -> list[Transaction | Exception]:
        raise NotImplementedError

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                results = await self._commit(batch)
            except Exception as exc:
                if not isinstance(exc, self.store_errors):
                    logger.exception("ledger batch failed")
                for op in batch:
                    if not op.done.done():
                        op.done.set_exception(Unavailable(f"transaction not stored: {exc}"))
                continue
            self.commits += 1
            for op, result in zip(batch, results, strict=True):
                if op.done.done():  # the caller has gone (its station closed)
                    continue
                if isinstance(result, Exception):
                    op.done.set_exception(result)
                else:
                    op.done.set_result(result)
