"""The durable command queue: calls for stations that may be offline.

`POST /api/v1/stations/{id}/calls` with `"queue": true` stores a `Command` and appends it to
the station's queue; the process that holds the station's socket delivers the queue in order,
one CALL at a time, as soon as the station is connected (at once, or when it next connects).
A command whose `ttl` passed before it went out is marked expired and never sent.

Status: queued -> sent -> answered (with the CALLRESULT) | failed (with the error), or
queued -> expired. A command taken from the queue whose CALL never went out (the socket
closed first) goes back to the head of the queue.
"""

import asyncio
import collections
import dataclasses
import logging
import time
import uuid
from typing import Any, Protocol

from csms.clock import rfc3339
from csms.observability.counters import bump
from csms.protocol.session import Session
from csms.state.calls import call_session

logger = logging.getLogger("csms.commands")

MAX_QUEUED = 1000  # per station: a queue is for a few commands, not a backlog without end
RETENTION = 86_400.0  # finished commands stay readable this long
QUEUED, SENT, ANSWERED, EXPIRED, FAILED = "queued", "sent", "answered", "expired", "failed"


class QueueFull(Exception):
    pass


@dataclasses.dataclass(slots=True)
class Command:
    id: str
    station_id: str
    action: str
    payload: dict[str, Any]
    created_at: float
    expires_at: float
    status: str = QUEUED
    updated_at: float = 0.0
    result: dict[str, Any] | None = None  # the CALLRESULT payload, once answered
    error: dict[str, Any] | None = None  # {"status": HTTP-like status, "detail": ...}

    @classmethod
    def new(cls, station_id: str, action: str, payload: dict[str, Any],
            ttl: float) -> "Command":
        now = time.time()
        return cls(uuid.uuid4().hex, station_id, action, payload, now, now + ttl,
                   updated_at=now)

    def current_status(self, now: float) -> str:
        """Queued commands past their ttl read as expired before the dispatcher sees them."""
        return EXPIRED if self.status == QUEUED and now >= self.expires_at else self.status

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "station": self.station_id, "action": self.action,
            "payload": self.payload, "status": self.current_status(time.time()),
            "createdAt": rfc3339(self.created_at), "expiresAt": rfc3339(self.expires_at),
            "updatedAt": rfc3339(self.updated_at)}
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Command":
        return cls(**data)


class CommandStore(Protocol):
    async def add(self, command: Command) -> None:
        """Store `command` and append it to its station's queue (QueueFull if full)."""

    async def get(self, command_id: str) -> Command | None: ...

    async def pop(self, station_id: str) -> Command | None:
        """Take the station's next queued command, or None."""

    async def requeue(self, command: Command) -> None:
        """Put a command that was not sent back at the head of its station's queue."""

    async def save(self, command: Command) -> None:
        """Record a status change."""

    async def depth(self) -> int:
        """Commands queued and not expired: across the cluster with Redis, or here."""
        ...

    def maybe_queued(self, station_id: str) -> bool:
        """False only when the station surely has nothing queued (no task needed)."""


class MemoryCommandStore:
    def __init__(self, max_records: int = 100_000) -> None:
        self._records: collections.OrderedDict[str, Command] = collections.OrderedDict()
        self._queues: dict[str, collections.deque[str]] = {}
        self._max = max_records

    async def add(self, command: Command) -> None:
        queue = self._queues.setdefault(command.station_id, collections.deque())
        if len(queue) >= MAX_QUEUED:
            raise QueueFull(f"{command.station_id} has {MAX_QUEUED} queued commands")
        self._prune(time.time())
        self._records[command.id] = command
        queue.append(command.id)

    async def get(self, command_id: str) -> Command | None:
        return self._records.get(command_id)

    async def pop(self, station_id: str) -> Command | None:
        queue = self._queues.get(station_id)
        while queue:
            command = self._records.get(queue.popleft())
            if command is not None:
                if not queue:
                    del self._queues[station_id]
                return command
        self._queues.pop(station_id, None)
        return None

    async def requeue(self, command: Command) -> None:
        command.status = QUEUED
        self._queues.setdefault(command.station_id, collections.deque()).appendleft(command.id)

    async def save(self, command: Command) -> None:
        self._records[command.id] = command

    def maybe_queued(self, station_id: str) -> bool:
        return station_id in self._queues

    async def depth(self) -> int:
        now = time.time()
        return sum(1 for queue in self._queues.values() for command_id in queue
                   if (c := self._records.get(command_id)) is not None and now < c.expires_at)

    def _prune(self, now: float) -> None:
        # Oldest first: drop finished records past retention, or any finished one when full.
        for command_id, command in list(self._records.items()):
            finished = command.current_status(now) != QUEUED and command.status != SENT
            expired = now - command.expires_at > RETENTION
            if not (finished and (expired or len(self._records) >= self._max)):
                break
            del self._records[command_id]


class CommandDispatcher:
    """Delivers each station's queue in order, one drain task per connected station."""

    def __init__(self, store: CommandStore) -> None:
        self._store = store
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def wake(self, session: Session) -> None:
        sid = session.station_id
        if not self._store.maybe_queued(sid):
            return  # most connects: no task, no allocation
        self._dirty.add(sid)
        task = self._running.get(sid)
        if task is None or task.done():
            self._running[sid] = asyncio.get_running_loop().create_task(self._drain(session))

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, session: Session) -> None:
        sid = session.station_id
        try:
            while sid in self._dirty and session.closed is None:
                self._dirty.discard(sid)
                while session.closed is None and await self.deliver_next(session):
                    pass
        except Exception:
            logger.exception("%s: delivering queued commands failed; retried on next connect",
                             sid)
        finally:
            if self._running.get(sid) is asyncio.current_task():
                del self._running[sid]

    async def deliver_next(self, session: Session) -> bool:
        """Send the station's next queued command; False when there was none to send."""
        command = await self._store.pop(session.station_id)
        if command is None:
            return False
        now = time.time()
        command.updated_at = now
        if now >= command.expires_at:
            command.status = EXPIRED
            await self._store.save(command)
            bump("csms_commands", EXPIRED)
            logger.info("%s: command %s (%s) expired unsent", session.station_id, command.id,
                        command.action)
            return True
        command.status = SENT
        await self._store.save(command)
        outcome = await call_session(session, command.action, command.payload, None)
        command.updated_at = time.time()
        if not outcome.sent:  # the socket closed before the CALL went out
            await self._store.requeue(command)
            return False
        if outcome.ok:
            command.status, command.result = ANSWERED, outcome.body
        else:
            command.status, command.error = FAILED, {"status": outcome.status,
                                                     "detail": outcome.body}
        await self._store.save(command)
        bump("csms_commands", command.status)
        logger.info("%s: command %s (%s) %s", session.station_id, command.id, command.action,
                    command.status)
        return True
