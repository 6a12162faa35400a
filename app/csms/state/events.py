"""The event bus: every accepted station message and every connect and disconnect.

`publish` never blocks the message path, and builds the event only when someone listens.
Each subscriber has a bounded queue; when a slow subscriber's queue is full the oldest event
is dropped and counted, never the message path stalled.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple, Protocol


class Event(NamedTuple):
    station_id: str
    version: str
    action: str  # an OCPP action, or "connected" / "disconnected"
    payload: dict[str, Any]
    time: float


class EventBus(Protocol):
    def publish(self, station_id: str, version: str, action: str,
                payload: dict[str, Any]) -> None: ...

    def subscribe(self, maxsize: int = 10_000) -> AsyncIterator[Event]: ...

    @property
    def dropped(self) -> int: ...

    @property
    def listening(self) -> bool:
        """Whether a published event goes anywhere: an event costly to build is built only
        then."""


class MemoryEventBus:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event]] = []
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def listening(self) -> bool:
        return bool(self._queues)

    def publish(self, station_id: str, version: str, action: str,
                payload: dict[str, Any]) -> None:
        if not self._queues:
            return
        event = Event(station_id, version, action, payload, time.time())
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self._dropped += 1
            queue.put_nowait(event)

    async def subscribe(self, maxsize: int = 10_000) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)
