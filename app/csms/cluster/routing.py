"""Station ownership and call routing between pods, through Redis.

Every process (each uvicorn worker too) is an *owner* with a random id. Keys:

  {p}pod:{owner}      "1" with a short TTL the owner renews every second or two: it is alive
  {p}owner:{station}  "{owner} {epoch}" with a lease (`CSMS_LEASE`) the owner renews
  {p}epochs           hash: station -> last connection epoch (the fencing token)
  {p}inbox:{owner}    list: messages for that owner (calls, replies, takeovers, wake-ups)

Newest connection wins cluster-wide: a connect takes the next epoch (HINCRBY) and overwrites
the owner key in one script, whatever stale entry was there, and tells the previous owner
through its inbox; that owner closes its socket at once. Should the message be lost (Redis
restarted), the lease renewal finds the key no longer "{owner} {epoch}" and closes the socket
then. A renewal that finds its key gone (a Redis restart lost it) re-claims it, unless a newer
epoch exists.

A call for a station held elsewhere is pushed onto the owner's inbox by a script that first
checks the owner is alive (503 if not); the owner makes the CALL and pushes the outcome onto
the caller's inbox. If no answer comes in time, the caller removes its request from the
owner's inbox (LREM): removed means the owner never took it (503), otherwise the owner took
it and the station did not answer in time (504). Lists, not pub/sub, so nothing is lost while
a consumer is busy; every call ends in exactly one outcome.
"""

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.observability.counters import bump
from csms.observability.runtime import Runtime
from csms.observability.tracing import Tracing, outcome_of, use_span
from csms.protocol.session import Session
from csms.state.calls import Outcome, call_session, not_connected
from csms.state.connections import SUPERSEDED, Connections
from csms.state.errors import Unavailable

logger = logging.getLogger("csms.cluster")

POD_TTL = 6.0  # seconds an owner counts as alive after its last heartbeat
HEARTBEAT = 2.0
INBOX_TTL_MS = 60_000
REPLY_GRACE = 1.0  # beyond the call's own timeout, for the trip through Redis
BATCH = 100
LISTEN_BLOCK = 0.5  # seconds a blocking inbox read waits before it looks again
RENEW_CHUNK = 500

_CLAIM = """
local epoch = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. epoch, 'PX', ARGV[3])
if prev then
  local owner = string.match(prev, '^(%S+) ')
  if owner and owner ~= ARGV[2] then
    local inbox = ARGV[4] .. 'inbox:' .. owner
    redis.call('LPUSH', inbox, cjson.encode({kind='superseded', station=ARGV[1], epoch=epoch}))
    redis.call('PEXPIRE', inbox, ARGV[5])
  end
end
return epoch
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
local lost = {}
for i = 1, #KEYS - 1 do
  local key, sid, epoch = KEYS[i + 1], ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local mine = ARGV[1] .. ' ' .. epoch
  local cur = redis.call('GET', key)
  if cur == mine then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not cur and tonumber(redis.call('HGET', KEYS[1], sid) or '0') <= tonumber(epoch) then
    redis.call('HSET', KEYS[1], sid, epoch)
    redis.call('SET', key, mine, 'PX', ARGV[2])
  else
    table.insert(lost, sid)
  end
end
return lost
"""
# 0: nobody holds the station; 1: its owner is dead; 2: pushed to the owner; 3: we own it.
_ROUTE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return {0, ''} end
local owner = string.match(cur, '^(%S+) ')
if owner == ARGV[2] then return {3, owner} end
if redis.call('EXISTS', ARGV[1] .. 'pod:' .. owner) == 0 then return {1, owner} end
local inbox = ARGV[1] .. 'inbox:' .. owner
redis.call('LPUSH', inbox, ARGV[3])
redis.call('PEXPIRE', inbox, ARGV[4])
return {2, owner}
"""


async def _no_control(message: dict[str, Any]) -> None:
    return None


async def tell_owner(redis: Redis, prefix: str, station_id: str,
                     message: dict[str, Any]) -> str | None:
    """Push a control message to the process holding the station (in gateway mode, to any
    backend: the station's socket is on the gateway); who holds it, or None if the station
    is not connected anywhere."""
    message = {**message, "station": station_id}
    value = await redis.get(f"{prefix}owner:{station_id}")
    if value:
        owner = owner_of(value)
        await push(redis, prefix, owner, message)
        return owner
    endpoint = await redis.hget(f"{prefix}gw:station:{station_id}", "endpoint")
    if not endpoint:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(f"{prefix}gw:control", json.dumps(message))
        pipe.pexpire(f"{prefix}gw:control", INBOX_TTL_MS)
        await pipe.execute()
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


async def push(redis: Redis, prefix: str, owner: str, message: dict[str, Any]) -> None:
    """Append a message to an owner's inbox (which expires if nobody reads it)."""
    inbox = f"{prefix}inbox:{owner}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(inbox, json.dumps(message))
        pipe.pexpire(inbox, INBOX_TTL_MS)
        await pipe.execute()


def owner_of(value: Any) -> str:
    """The owner in an owner key's "{owner} {epoch}"."""
    return str(value.decode()).split(" ")[0]


def new_owner_id(prefix: str | None = None) -> str:
    """Unique per process (each uvicorn worker is an owner); the prefix names the pod."""
    return f"{prefix or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisRouter:
    def __init__(self, redis: Redis, prefix: str, connections: Connections,
                 lease: float = 30.0, call_timeout: float = 30.0,
                 owner_prefix: str | None = None) -> None:
        self.owner_id = new_owner_id(owner_prefix)
        self.tracing: Tracing | None = None
        self.runtime: Runtime | None = None
        self.wake: Callable[[Session], None] = lambda session: None
        self.control: Callable[[dict[str, Any]], Awaitable[None]] = _no_control
        self._redis = redis
        self._prefix = prefix
        self._connections = connections
        self._lease_ms = int(lease * 1000)
        self._renew_every = lease / 3
        self._call_timeout = call_timeout
        self._epochs: dict[str, int] = {}  # station -> epoch of our connection to it
        self._unclaimed: set[str] = set()  # connected while Redis was unreachable
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._inbox = f"{prefix}inbox:{self.owner_id}"
        self._inboxes = [self._inbox]  # the lists the listener reads, in order
        self._pod = f"{prefix}pod:{self.owner_id}"
        self._epoch_key = f"{prefix}epochs"
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._route = redis.register_script(_ROUTE)
        self.reachable = True
        self._stopping = False

    def _owner_key(self, station_id: str) -> str:
        return f"{self._prefix}owner:{station_id}"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._redis.set(self._pod, "1", px=int(POD_TTL * 1000))
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._heartbeat()), loop.create_task(self._listen())]
        logger.info("cluster owner id %s", self.owner_id)

    async def close(self) -> None:
        """Give up ownership of what we still hold, and stop."""
        # The inbox reader stops between two blocking reads: cancelling a task inside a
        # blocking Redis command can leave it stuck.
        self._stopping = True
        if self._loops:
            heartbeat, *readers = self._loops
            heartbeat.cancel()
            with contextlib.suppress(RedisError):
                await self._push(self.owner_id, {"kind": "stop"})  # wakes the reader now
            await asyncio.wait(self._loops, timeout=LISTEN_BLOCK + 1.0)
            for task in readers:
                task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
        with contextlib.suppress(RedisError):
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid, epoch in self._epochs.items():
                    await self._release(keys=[self._owner_key(sid)],
                                        args=[f"{self.owner_id} {epoch}"], client=pipe)
                pipe.delete(self._pod)
                await pipe.execute()
        self._epochs.clear()

    # -- ownership -------------------------------------------------------------------------

    async def claim(self, session: Session) -> None:
        sid = session.station_id
        try:
            epoch = int(await self._claim(
                keys=[self._owner_key(sid), self._epoch_key],
                args=[sid, self.owner_id, self._lease_ms, self._prefix, INBOX_TTL_MS]))
        except RedisError as exc:
            logger.warning("%s: ownership not recorded, retried when Redis returns: %s",
                           sid, exc)
            self._unclaimed.add(sid)
            return
        if self._connections.get(sid) is session:
            self._epochs[sid] = epoch
            self.wake(session)

    async def release(self, session: Session) -> None:
        sid = session.station_id
        self._unclaimed.discard(sid)
        epoch = self._epochs.pop(sid, None)
        if epoch is None:
            return
        try:
            await self._release(keys=[self._owner_key(sid)],
                                args=[f"{self.owner_id} {epoch}"])
        except RedisError as exc:
            logger.debug("%s: release failed (the lease will expire): %s", sid, exc)

    async def owner(self, station_id: str) -> str | None:
        if self._connections.get(station_id) is not None:
            return self.owner_id
        try:
            value = await self._redis.get(self._owner_key(station_id))
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return owner_of(value) if value else None

    async def _heartbeat(self) -> None:
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                started = time.perf_counter()
                await self._redis.set(self._pod, "1", px=int(POD_TTL * 1000))
                if self.runtime is not None:
                    self.runtime.redis(time.perf_counter() - started)
                recovered = not self.reachable
                self.reachable = True
                if recovered or self._unclaimed or \
                        time.monotonic() - last_renewal >= self._renew_every:
                    if recovered:
                        logger.info("Redis reachable again: renewing ownership")
                    await self._claim_unclaimed()
                    await self.renew()
                    last_renewal = time.monotonic()
            except RedisError as exc:
                if self.runtime is not None:
                    self.runtime.redis_failed("heartbeat")
                if self.reachable:
                    logger.warning("Redis unreachable; serving connected stations locally: %s",
                                   exc)
                self.reachable = False

    async def _claim_unclaimed(self) -> None:
        for sid in list(self._unclaimed):
            self._unclaimed.discard(sid)
            session = self._connections.get(sid)
            if session is not None:
                await self.claim(session)

    async def renew(self) -> None:
        """Extend our leases; close the sockets a newer connection elsewhere superseded."""
        owned = list(self._epochs.items())
        for start in range(0, len(owned), RENEW_CHUNK):
            chunk = owned[start:start + RENEW_CHUNK]
            args: list[Any] = [self.owner_id, self._lease_ms]
            for sid, epoch in chunk:
                args += [sid, epoch]
            lost = await self._renew(
                keys=[self._epoch_key, *(self._owner_key(sid) for sid, _ in chunk)], args=args)
            for raw in lost:
                await self._superseded(raw.decode(), None)

    async def _superseded(self, sid: str, epoch: int | None) -> None:
        mine = self._epochs.get(sid)
        if mine is None or (epoch is not None and mine >= epoch):
            return
        del self._epochs[sid]
        logger.info("%s: %s on another pod", sid, SUPERSEDED.reason)
        await self._connections.disconnect(sid, SUPERSEDED)

    # -- calls -----------------------------------------------------------------------------

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None) -> Outcome:
        session = self._connections.get(station_id)
        if session is not None:
            return await call_session(session, action, payload, timeout)
        if self.tracing is None:
            outcome = await self._call_elsewhere(station_id, action, payload, timeout)
        else:
            span = self.tracing.route(station_id, action)
            with use_span(span, end_on_exit=True):
                outcome = await self._call_elsewhere(station_id, action, payload, timeout,
                                                     self.tracing.inject(span))
                outcome_of(span, outcome.status)
        bump("csms_routed_calls", str(outcome.status))
        return outcome

    async def _call_elsewhere(self, station_id: str, action: str, payload: dict[str, Any],
                              timeout: float | None,
                              trace: dict[str, str] | None = None) -> Outcome:
        timeout = self._call_timeout if timeout is None else timeout
        request_id = uuid.uuid4().hex
        call: dict[str, Any] = {
            "kind": "call", "id": request_id, "station": station_id, "action": action,
            "payload": payload, "timeout": timeout, "deadline": time.time() + timeout,
            "from": self.owner_id}
        if trace:
            call["trace"] = trace  # W3C trace context: the owner's spans join this trace
        message = json.dumps(call)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            try:
                code, owner = await self._route(
                    keys=[self._owner_key(station_id)],
                    args=[self._prefix, self.owner_id, message, INBOX_TTL_MS])
            except RedisError as exc:
                if self.runtime is not None:
                    self.runtime.redis_failed("route")
                return Outcome(503, f"cluster state unreachable (Redis): {exc}")
            owner = owner.decode()
            if code in (0, 3):
                return not_connected(station_id)
            if code == 1:
                return Outcome(503, f"the pod holding {station_id!r} ({owner}) is unreachable")
            try:
                async with asyncio.timeout(timeout + REPLY_GRACE):
                    return await future
            except TimeoutError:
                return await self._withdraw(station_id, owner, message)
        finally:
            self._waiting.pop(request_id, None)

    async def _withdraw(self, station_id: str, owner: str, message: str) -> Outcome:
        try:
            removed = await self._redis.lrem(f"{self._prefix}inbox:{owner}", 1, message)
        except RedisError:
            removed = 0
        if removed:
            return Outcome(503, f"the pod holding {station_id!r} ({owner}) did not take the call")
        return Outcome(504, f"{station_id} did not answer in time")

    async def notify(self, station_id: str) -> None:
        session = self._connections.get(station_id)
        if session is not None:
            self.wake(session)
            return
        try:
            await tell_owner(self._redis, self._prefix, station_id, {"kind": "wake"})
        except RedisError as exc:  # queued all the same: delivered at the next connect
            logger.warning("%s: owner not told of a queued command: %s", station_id, exc)

    async def _push(self, owner: str, message: dict[str, Any]) -> None:
        await push(self._redis, self._prefix, owner, message)

    # -- the inbox -------------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                reply: Any = await self._redis.blmpop(
                    LISTEN_BLOCK, len(self._inboxes), *self._inboxes, direction="RIGHT",
                    count=BATCH)
                backoff = 0.1
            except RedisError as exc:
                logger.debug("inbox read failed: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if not reply:
                continue
            for raw in reply[1]:
                try:
                    await self._dispatch(json.loads(raw))
                except Exception:
                    logger.exception("bad inbox message %r", raw[:200])

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "reply":
            future = self._waiting.get(message["id"])
            if future is not None and not future.done():
                future.set_result(Outcome.from_json(message))
        elif kind == "call":
            task = asyncio.get_running_loop().create_task(self._serve_call(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "superseded":
            await self._superseded(message["station"], int(message["epoch"]))
        elif kind == "stop":
            return
        elif kind == "wake":
            session = self._connections.get(message["station"])
            if session is not None:
                self.wake(session)
        else:  # "evict", "configure": from the operator
            await self.control(message)

    async def _serve_call(self, message: dict[str, Any]) -> None:
        remaining = message["deadline"] - time.time()
        if remaining <= 0:
            return  # the caller has given up and answered its client already
        span = None if self.tracing is None else self.tracing.routed(
            message.get("trace", {}), message["station"], message["action"], message["from"])
        session = self._connections.get(message["station"])
        if session is None:
            outcome = not_connected(message["station"])
        else:  # when traced, the station's CALL is a child of the routed span
            with use_span(span) if span is not None else contextlib.nullcontext():
                outcome = await call_session(session, message["action"], message["payload"],
                                             min(message["timeout"], remaining))
        if span is not None:
            outcome_of(span, outcome.status)
            span.end()
        try:
            await self._push(message["from"], {"kind": "reply", "id": message["id"],
                                               **outcome.to_json()})
        except RedisError as exc:
            logger.warning("reply to %s lost (the caller answers 504): %s", message["from"], exc)

    async def idle(self) -> None:
        """Wait for the calls other pods asked of us to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
