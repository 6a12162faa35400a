"""Gateway mode in Redis: stations' connections on a gateway, and calls to them from any
backend.

Keys, besides the cluster's inboxes and pod heartbeats (`routing`):

  {p}gw:station:{station}  hash: connection, endpoint, signing, version, epoch, since
  {p}gw:conn:{connection}  hash: station, endpoint, signing, version, epoch, fresh, superseded
  {p}gw:call:{station}     "{owner} {message id}": the station's turn, held by whoever has a
                           CALL outstanding to it (expires with the call's timeout)
  {p}gw:drain:{station}    the backend delivering the station's queued commands
  {p}gw:dirty:{station}    commands were queued while someone else was delivering
  {p}gw:control            operator messages (evict, configure) for any backend to act on

Newest connection wins: a connect takes the next epoch, points the station at the new
connection and marks the old one superseded (the backend then closes it through the
gateway). A CALLRESULT or CALLERROR that reaches any backend is matched against the turn:
the right message id frees the turn and goes to the waiting owner's inbox. A disconnect (or a
newer connection) while a CALL is outstanding tells the waiter at once: `NotConnected`.
"""

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.clock import rfc3339
from csms.cluster.codec import entry_from_json
from csms.cluster.routing import _RELEASE, INBOX_TTL_MS, REPLY_GRACE, RedisRouter
from csms.observability.counters import bump
from csms.protocol.session import next_message_id
from csms.serverless.connections_api import ConnectionsApi, GatewayError
from csms.serverless.contract import Link
from csms.serverless.session import GatewaySession
from csms.state.calls import Outcome, call_session, not_connected
from csms.state.commands import CommandDispatcher, CommandStore
from csms.state.connections import Closing, Connections
from csms.state.errors import Unavailable
from csms.state.registry import StationEntry

logger = logging.getLogger("csms.gateway")

CONNECTION_TTL_MS = 7 * 86_400_000  # a record outlives a gateway that died without telling
DRAIN_LEASE_MS = 120_000  # renewed after each delivered command
TURN_POLL_MAX = 0.1  # seconds between two looks at a busy turn held by another backend
_ROUTES = {0: "nobody", 1: "relayed", 2: "here"}

_PUSH_CLOSED = """
local function closed(prefix, sid, connection, reason, ttl)
  local key = prefix .. 'gw:call:' .. sid
  local call = redis.call('GET', key)
  if not call then return end
  local owner = string.match(call, '^(%S+) ')
  redis.call('DEL', key)
  local inbox = prefix .. 'inbox:' .. owner
  redis.call('LPUSH', inbox, cjson.encode({kind='gw-closed', station=sid,
                                           connection=connection, reason=reason}))
  redis.call('PEXPIRE', inbox, ttl)
end
"""
# KEYS: station, connection, epochs. ARGV: station, connection, endpoint, signing, version,
# ttl, now, prefix, inbox ttl. Returns {epoch, previous connection, its endpoint, signing}.
_CONNECT = _PUSH_CLOSED + """
local epoch = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
local prev = redis.call('HMGET', KEYS[1], 'connection', 'endpoint', 'signing')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'connection', ARGV[2], 'endpoint', ARGV[3], 'signing', ARGV[4],
           'version', ARGV[5], 'epoch', epoch, 'since', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], 'station', ARGV[1], 'endpoint', ARGV[3], 'signing', ARGV[4],
           'version', ARGV[5], 'epoch', epoch, 'fresh', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if prev[1] and prev[1] ~= ARGV[2] then
  local old = ARGV[8] .. 'gw:conn:' .. prev[1]
  if redis.call('EXISTS', old) == 1 then redis.call('HSET', old, 'superseded', '1') end
  closed(ARGV[8], ARGV[1], prev[1], 'superseded by a newer connection', ARGV[9])
end
return {epoch, prev[1] or '', prev[2] or '', prev[3] or ''}
"""
# KEYS: connection, registry. ARGV: ttl, prefix. {the connection's record (its TTL renewed),
# with `fresh` as it was (the first frame of a connection clears it), the station's registry
# entry}: what a frame needs, in one round trip.
_TOUCH = """
local record = redis.call('HGETALL', KEYS[1])
if #record == 0 then return {record, false} end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local entry = false
for i = 1, #record, 2 do
  if record[i] == 'station' then
    redis.call('PEXPIRE', ARGV[2] .. 'gw:station:' .. record[i + 1], ARGV[1])
    entry = redis.call('HGET', KEYS[2], record[i + 1])
  elseif record[i] == 'fresh' then
    redis.call('HDEL', KEYS[1], 'fresh')
  end
end
return {record, entry}
"""
# KEYS: connection. ARGV: connection, prefix, inbox ttl. Returns {station, version, 1 if it
# was the station's current connection}; a CALL outstanding on it fails at once.
_DISCONNECT = _PUSH_CLOSED + """
local found = redis.call('HMGET', KEYS[1], 'station', 'version')
local sid = found[1]
if not sid then return {'', '', 0} end
redis.call('DEL', KEYS[1])
local skey = ARGV[2] .. 'gw:station:' .. sid
if redis.call('HGET', skey, 'connection') ~= ARGV[1] then return {sid, found[2], 0} end
redis.call('DEL', skey)
closed(ARGV[2], sid, ARGV[1], 'disconnected', ARGV[3])
return {sid, found[2], 1}
"""
# KEYS: turn. ARGV: message id, our owner id, the message for the waiter, prefix, inbox ttl.
# 0: nobody waits for this id; 1: pushed to the waiter; 2: the waiter is us.
_REPLY = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local owner, id = string.match(cur, '^(%S+) (.*)$')
if id ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if owner == ARGV[2] then return 2 end
local inbox = ARGV[4] .. 'inbox:' .. owner
redis.call('LPUSH', inbox, ARGV[3])
redis.call('PEXPIRE', inbox, ARGV[5])
return 1
"""

# (station, version, link, send) -> a session whose CALLs take the station's turn.
SessionFactory = Callable[[str, str, Link, Callable[[str], Any]], GatewaySession]


class Connection:
    """A gateway connection as Redis records it, and its station's registry entry."""

    __slots__ = ("entry", "epoch", "fresh", "link", "station_id", "superseded", "version")

    def __init__(self, record: dict[bytes, bytes], connection_id: str,
                 entry: StationEntry | None) -> None:
        self.entry = entry  # None: not in the registry
        self.station_id = record[b"station"].decode()
        self.version = record[b"version"].decode()
        self.epoch = int(record[b"epoch"])
        self.fresh = b"fresh" in record
        self.superseded = b"superseded" in record
        self.link = Link(record[b"endpoint"].decode(), connection_id,
                         record.get(b"signing", b"").decode())


@functools.lru_cache(maxsize=4096)
def decoded(raw: bytes) -> StationEntry:
    """A registry entry, decoded once while its text is unchanged (entries are frozen)."""
    return entry_from_json(raw)


class _Pipelined:
    """Calls of one script made at the same moment go to Redis as one pipeline: under load
    a single round trip (and a single trip through the client library, most of a frame's
    cost) serves many frames; alone, a call goes out at once."""

    def __init__(self, redis: Redis, script: Any) -> None:
        self._redis = redis
        self._script = script
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, done))
        if self._task is None:
            self._task = loop.create_task(self._send())
        return await done

    async def _send(self) -> None:
        try:
            while self._queue:  # what comes while a batch is out goes in the next one
                batch, self._queue = self._queue, []
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for keys, args, _ in batch:
                            await self._script(keys=keys, args=args, client=pipe)
                        results = await pipe.execute(raise_on_error=False)
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, _, done), result in zip(batch, results, strict=True):
                    if done.done():
                        continue
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            self._task = None


class _Turnstile:
    """This process's waiters for one station's turn, in order; gone when none is left."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class GatewayRouter(RedisRouter):
    def __init__(self, redis: Redis, prefix: str, connections: Connections,
                 commands: CommandStore, api: ConnectionsApi, *, lease: float = 30.0,
                 call_timeout: float = 30.0, owner_prefix: str | None = None) -> None:
        super().__init__(redis, prefix, connections, lease=lease, call_timeout=call_timeout,
                         owner_prefix=owner_prefix)
        self.api = api
        self.sessions: SessionFactory | None = None  # set by the app: it has the routes
        self._dispatcher = CommandDispatcher(commands)
        self._control_key = f"{prefix}gw:control"
        self._registry_key = f"{prefix}registry"  # RedisRegistry's hash
        self._inboxes = [self._inbox, self._control_key]
        self._calling: dict[str, GatewaySession] = {}  # station -> the session holding its turn
        self._turnstiles: dict[str, _Turnstile] = {}
        self._connect = redis.register_script(_CONNECT)
        self._touch = _Pipelined(redis, redis.register_script(_TOUCH))
        self._disconnect = redis.register_script(_DISCONNECT)
        self._reply = redis.register_script(_REPLY)
        self._release_if_mine = redis.register_script(_RELEASE)

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}gw:{kind}:{name}"

    async def start(self) -> None:
        await self.api.start()
        await super().start()

    async def close(self) -> None:
        await super().close()
        await self.api.close()

    # -- connections -----------------------------------------------------------------------

    async def connected(self, station_id: str, link: Link, version: str) -> Link | None:
        """Record the station's new connection; the one it replaces, if any."""
        try:
            _, previous, endpoint, signing = await self._connect(
                keys=[self._key("station", station_id), self._key("conn", link.connection_id),
                      self._epoch_key],
                args=[station_id, link.connection_id, link.endpoint, link.signing, version,
                      CONNECTION_TTL_MS, time.time(), self._prefix, INBOX_TTL_MS])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        if not previous:
            return None
        return Link(endpoint.decode(), previous.decode(), signing.decode())

    async def connection(self, connection_id: str) -> Connection | None:
        """The connection a frame came on (its records' lifetimes renewed) with its station's
        registry entry, or None."""
        try:
            values, entry = await self._touch(
                keys=[self._key("conn", connection_id), self._registry_key],
                args=[CONNECTION_TTL_MS, self._prefix])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        if not values:
            return None
        return Connection(dict(zip(values[::2], values[1::2], strict=True)), connection_id,
                          decoded(entry) if entry else None)

    async def disconnected(self, connection_id: str) -> tuple[str, str, bool]:
        """Forget the connection: (its station or "", its version, whether it was the
        station's current one)."""
        try:
            sid, version, current = await self._disconnect(
                keys=[self._key("conn", connection_id)],
                args=[connection_id, self._prefix, INBOX_TTL_MS])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return sid.decode(), version.decode(), bool(current)

    async def link(self, station_id: str) -> tuple[Link, str] | None:
        """The station's current connection and its version, or None."""
        try:
            values = await self._redis.hmget(self._key("station", station_id),
                                             ["connection", "endpoint", "signing", "version"])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        connection, endpoint, signing, version = (
            v.decode() if isinstance(v, bytes) else "" for v in values)
        if not connection:
            return None
        return Link(endpoint, connection, signing), version

    async def describe(self, station_id: str) -> dict[str, Any] | None:
        """The station's current connection as the API shows it, or None."""
        try:
            values = await self._redis.hmget(self._key("station", station_id),
                                             ["endpoint", "version", "since"])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        endpoint, version, since = (v.decode() if isinstance(v, bytes) else "" for v in values)
        if not endpoint:
            return None
        return {"connected": True, "pod": endpoint, "version": version,
                "connectedSince": rfc3339(float(since or 0))}

    async def stations(self) -> list[str]:
        """Every station connected through a gateway (for a registry reload)."""
        found = []
        try:
            async for key in self._redis.scan_iter(match=self._key("station", "*"), count=500):
                found.append(key.decode()[len(self._key("station", "")):])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return found

    async def close_link(self, link: Link, closing: Closing) -> None:
        """Ask the gateway to close a connection; a failure is logged, not raised (the next
        frame on it is refused all the same)."""
        try:
            await self.api.delete(link, closing.code, closing.reason)
        except GatewayError as exc:
            logger.warning("closing connection %s failed: %s", link.connection_id, exc)

    async def close_station(self, station_id: str, closing: Closing) -> bool:
        found = await self.link(station_id)
        if found is None:
            return False
        await self.close_link(found[0], closing)
        return True

    async def owner(self, station_id: str) -> str | None:
        found = await self.link(station_id)
        return None if found is None else found[0].endpoint

    async def claim(self, session: Any) -> None:
        return None  # no socket here: gateway connections are recorded by `connected`

    async def release(self, session: Any) -> None:
        return None

    # -- our CALLs -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(self, session: GatewaySession, timeout: float) -> AsyncIterator[str]:
        sid = session.station_id
        turnstile = self._turnstiles.get(sid)
        if turnstile is None:
            turnstile = self._turnstiles[sid] = _Turnstile()
        turnstile.users += 1
        try:
            async with turnstile.lock:  # in order within this process
                message_id = next_message_id()
                mine = f"{self.owner_id} {message_id}"
                await self._take_turn(sid, mine, int((timeout + REPLY_GRACE) * 1000))
                self._calling[sid] = session
                try:
                    yield message_id
                finally:
                    if self._calling.get(sid) is session:
                        del self._calling[sid]
                    with contextlib.suppress(RedisError):  # else it expires with the call
                        await self._release_if_mine(keys=[self._key("call", sid)],
                                                    args=[mine])
        finally:
            turnstile.users -= 1
            if not turnstile.users:
                del self._turnstiles[sid]

    async def _take_turn(self, station_id: str, mine: str, ttl_ms: int) -> None:
        delay = 0.005
        try:
            while not await self._redis.set(self._key("call", station_id), mine, nx=True,
                                            px=ttl_ms):
                await asyncio.sleep(delay)  # another backend's CALL: it ends within its timeout
                delay = min(delay * 2, TURN_POLL_MAX)
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None) -> Outcome:
        try:
            session = await self._found(station_id)
        except Unavailable as exc:
            return Outcome(503, f"cluster state unreachable (Redis): {exc}", sent=False)
        if session is None:
            return not_connected(station_id)
        outcome = await call_session(session, action, payload, timeout)
        bump("csms_routed_calls", str(outcome.status))
        return outcome

    async def _found(self, station_id: str, send: Callable[[str], Any] | None = None
                     ) -> GatewaySession | None:
        """A session for calling the station over its current connection."""
        found = await self.link(station_id)
        if found is None:
            return None
        link, version = found
        assert self.sessions is not None, "the app sets the session factory"
        return self.sessions(station_id, version, link, send or self.sender(link))

    def sender(self, link: Link) -> Callable[[str], Any]:
        """Frames to the station: posted to its gateway connection."""
        async def send(text: str) -> None:
            await self.api.send(link, text)

        return send

    async def reply(self, station_id: str, message_id: str, text: str) -> bool:
        """A CALLRESULT or CALLERROR from the station: to the backend waiting for it. False
        when nobody waits for that id (late, or never asked)."""
        message = json.dumps({"kind": "frame", "station": station_id, "text": text})
        try:
            routed = await self._reply(
                keys=[self._key("call", station_id)],
                args=[message_id, self.owner_id, message, self._prefix, INBOX_TTL_MS])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        bump("csms_gateway_answers", _ROUTES[routed])
        if routed == 2:
            self._hand_over(station_id, text)
        return bool(routed)

    def _hand_over(self, station_id: str, text: str) -> None:
        session = self._calling.get(station_id)
        if session is not None:
            session.receive(text)
        else:  # the waiter gave up between the turn's check and now
            logger.info("%s: a reply came after its caller gave up", station_id)

    # -- queued commands -------------------------------------------------------------------

    async def notify(self, station_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.deliver(station_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, station_id: str, send: Callable[[str], Any] | None = None) -> None:
        """Deliver the station's queued commands in order, unless another backend is at it
        (it then sees the dirty mark and goes on). `send` replaces the post to the gateway
        (a frame's request sends its held reply first)."""
        lease, dirty = self._key("drain", station_id), self._key("dirty", station_id)
        mine = f"{self.owner_id} {next_message_id()}"
        try:
            await self._redis.set(dirty, "1", px=DRAIN_LEASE_MS)
            while await self._redis.set(lease, mine, nx=True, px=DRAIN_LEASE_MS):
                try:
                    await self._redis.delete(dirty)
                    session = await self._found(station_id, send)
                    while session is not None and session.closed is None and \
                            await self._dispatcher.deliver_next(session):
                        await self._redis.pexpire(lease, DRAIN_LEASE_MS)
                finally:
                    await self._release_if_mine(keys=[lease], args=[mine])
                if not await self._redis.exists(dirty):
                    return
        except (RedisError, Unavailable) as exc:
            logger.warning("%s: queued commands not delivered now (next connect): %s",
                           station_id, exc)
        except Exception:
            logger.exception("%s: delivering queued commands failed", station_id)

    # -- the inbox -------------------------------------------------------------------------

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "frame":
            self._hand_over(message["station"], message["text"])
        elif kind == "gw-closed":
            session = self._calling.get(message["station"])
            if session is not None and session.link.connection_id == message["connection"]:
                session.close(message["reason"])
        elif kind in ("evict", "configure"):
            await self.control(message)
        elif kind != "stop":
            logger.warning("unexpected inbox message %s", kind)
