"""Transaction ids the central system allocates (OCPP 1.6 StartTransaction).

OCPP 1.6 transaction ids are integers that stations commonly hold in 32 bits. The in-memory
allocator starts from the seconds since 2024-01-01 at start-up, so ids keep rising across
restarts as long as the process allocates less than one id per second on average since the
previous start. The SQLite ledger's allocator (`CSMS_DATA_DIR`) and the Redis one (cluster
mode) are exact: blocks of ids are reserved durably before any is given.
"""

import itertools
import time
from typing import Protocol

_EPOCH_2024 = 1_704_067_200
INT32_MAX = 2**31 - 1


class TransactionIds(Protocol):
    async def next_id(self) -> int: ...


class MemoryTransactionIds:
    def __init__(self, start: int | None = None) -> None:
        self.first = start if start is not None else max(1, int(time.time()) - _EPOCH_2024)
        self._counter = itertools.count(self.first)

    async def next_id(self) -> int:
        value = next(self._counter)
        if value > INT32_MAX:
            raise OverflowError("transaction ids exhausted the 32-bit range")
        return value
