"""The event bus on a Redis Stream, for downstream consumers (billing, analytics).

Stream `{prefix}events`, one entry per accepted station message or connect/disconnect, with
the fields `station`, `version`, `action`, `payload` (JSON) and `time` (Unix seconds), trimmed
with `XADD MAXLEN ~ maxlen`. Consumers read it with XREAD or a consumer group
(`examples/event_consumer.py`).

`publish` never blocks the message path: events go to a bounded local buffer that one task
flushes in pipelined batches. While Redis is unreachable the buffer holds up to `buffer`
events, then drops the oldest and counts them (`csms_events_dropped_total`); flushing
resumes by itself when Redis returns.
"""

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.cluster.flushing import flush_forever, stop_flushing
from csms.state.events import Event

BATCH = 500


class RedisEventBus:
    def __init__(self, redis: Redis, prefix: str = "csms:", maxlen: int = 1_000_000,
                 buffer: int = 100_000) -> None:
        self._redis = redis
        self.stream = f"{prefix}events"
        self._maxlen = maxlen
        self._buffer: collections.deque[tuple[str, str, str, dict[str, Any], float]] = \
            collections.deque()
        self._limit = buffer
        self._dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return True  # the stream keeps every event for its consumers

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def publish(self, station_id: str, version: str, action: str,
                payload: dict[str, Any]) -> None:
        if len(self._buffer) >= self._limit:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append((station_id, version, action, payload, time.time()))
        self._wake.set()

    def _waiting(self) -> str:
        return f"{len(self._buffer)} events"

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(flush_forever(
            self._wake, self.flush, self._waiting))

    async def close(self) -> None:
        if self._task is not None:
            await stop_flushing(self._task, self.flush, self._waiting)

    async def flush(self) -> None:
        """Write everything buffered; raises RedisError if Redis is unreachable."""
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for station, version, action, payload, at in batch:
                        pipe.xadd(self.stream, {
                            "station": station, "version": version, "action": action,
                            "payload": json.dumps(payload), "time": repr(at)},
                            maxlen=self._maxlen, approximate=True)
                    await pipe.execute()
            except RedisError:
                self._buffer.extendleft(reversed(batch))  # keep order; retry later
                while len(self._buffer) > self._limit:
                    self._buffer.popleft()
                    self._dropped += 1
                raise

    async def subscribe(self, maxsize: int = 10_000) -> AsyncIterator[Event]:
        """New events from the stream, from now on (XREAD BLOCK)."""
        last = "$"
        while True:
            reply: Any = await self._redis.xread({self.stream: last}, count=maxsize, block=1000)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    yield event_of(fields)


def event_of(fields: dict[bytes, bytes]) -> Event:
    return Event(fields[b"station"].decode(), fields[b"version"].decode(),
                 fields[b"action"].decode(), json.loads(fields[b"payload"]),
                 float(fields[b"time"]))
