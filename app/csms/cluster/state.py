"""The registry, per-station state and transaction ids in Redis.

Keys (all under one prefix, `csms:` by default):
  {p}registry             hash: station id -> entry JSON (password as a PBKDF2 hash only)
  {p}station:{id}         hash: boot, bootedAt, meterValues (JSON), protocol, and presence
                          (pod, connectedAt, lastSeen, disconnectedAt, lastRejection)
  {p}station:{id}:{table} hash: connectors | configuration -> JSON,
                          at most MAX_* fields each (a station cannot grow them unbounded)
  {p}txid                 counter: OCPP 1.6 transaction ids, unique across the cluster
"""

import asyncio
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.cluster.codec import entry_from_json, entry_to_json
from csms.cluster.flushing import flush_forever, stop_flushing
from csms.observability.counters import bump
from csms.state.errors import Unavailable
from csms.state.registry import StationEntry
from csms.state.stations import (
    MAX_CONFIG_KEYS,
    MAX_CONNECTORS,
    Boot,
    StationState,
)
from csms.state.transactions import INT32_MAX

# Set a field unless the hash is full and the field is new: atomic, one round trip.
_BOUNDED_HSET = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3])
then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0
"""

logger = logging.getLogger("csms.cluster")
P = ParamSpec("P")
T = TypeVar("T")


def unavailable(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Reads: Redis errors become `Unavailable`, which callers answer with 503."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
    return wrapper


class _Lost:
    warned = False  # one warning per outage


def tolerant(method: Callable[P, Coroutine[Any, Any, T | None]]
             ) -> Callable[P, Coroutine[Any, Any, T | None]]:
    """Writes: while Redis is down the station is still answered; the write is lost and
    counted (`csms_state_writes_lost_total`)."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            result = await method(*args, **kwargs)
        except RedisError as exc:
            bump("csms_state_writes_lost")
            if not _Lost.warned:
                _Lost.warned = True
                logger.warning("station state not written while Redis is unreachable: %s", exc)
            return None
        _Lost.warned = False
        return result
    return wrapper


class RedisRegistry:
    def __init__(self, redis: Redis, prefix: str = "csms:") -> None:
        self._redis = redis
        self._key = f"{prefix}registry"

    @unavailable
    async def get(self, station_id: str) -> StationEntry | None:
        raw = await self._redis.hget(self._key, station_id)
        return entry_from_json(raw) if raw is not None else None

    async def all(self) -> list[StationEntry]:
        return [entry_from_json(v) for v in (await self._redis.hgetall(self._key)).values()]

    async def put(self, entry: StationEntry) -> None:
        await self._redis.hset(self._key, entry.station_id, entry_to_json(entry))

    async def delete(self, station_id: str) -> bool:
        return bool(await self._redis.hdel(self._key, station_id))

    async def replace(self, entries: Iterable[StationEntry]) -> None:
        """Make the registry exactly `entries`, atomically."""
        mapping: dict[str | bytes, str | bytes] = {
            e.station_id: entry_to_json(e) for e in entries}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key)
            if mapping:
                pipe.hset(self._key, mapping=mapping)  # type: ignore[arg-type]
            await pipe.execute()


@dataclasses.dataclass(slots=True)
class _Hash:
    """What waits to be written to one hash: deleted first if `cleared`, then each field set
    to its value (a None deletes the field) and bound (the hash's size limit, or 0)."""

    cleared: bool = False
    fields: dict[str, tuple[str | None, int]] = dataclasses.field(default_factory=dict)

    def then(self, newer: "_Hash") -> "_Hash":
        """These writes followed by `newer`'s, as one."""
        if newer.cleared:
            return newer
        return _Hash(self.cleared, {**self.fields, **newer.fields})


class RedisStationStore:
    """Station state in Redis. Boot, connector, meter-value and configuration records are
    written behind: the handler answers at once, the latest value per field is kept and one
    task writes them in pipelined batches (within milliseconds; at once before a read on this
    pod). While Redis is down they wait, coalesced per field, up to `max_pending` fields;
    beyond that new ones are dropped and counted (`csms_state_writes_lost_total`).
    Transactions are the ledger's (`csms.cluster.ledger`), written through."""

    def __init__(self, redis: Redis, prefix: str = "csms:", max_pending: int = 200_000) -> None:
        self._redis = redis
        self._prefix = prefix
        self._bounded = redis.register_script(_BOUNDED_HSET)
        self._pending: dict[str, _Hash] = {}
        self._count = 0  # fields pending, over every hash
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes buffered and not flushed yet (`csms_writes_waiting{kind="state"}`)."""
        return self._count

    def _key(self, station_id: str, table: str | None = None) -> str:
        base = f"{self._prefix}station:{station_id}"
        return f"{base}:{table}" if table else base

    def _waiting(self) -> str:
        return f"station state ({self._count} fields)"

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(flush_forever(
            self._wake, self.flush, self._waiting))

    async def close(self) -> None:
        if self._task is not None:
            await stop_flushing(self._task, self.flush, self._waiting)

    def _write(self, key: str, field: str, value: str | None, bound: int = 0) -> None:
        """Set (or, with None, delete) a field, written behind."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Hash()
        if field not in pending.fields:
            if self._count >= self._max_pending:
                bump("csms_state_writes_lost")
                return
            self._count += 1
        pending.fields[field] = (value, bound)
        self._wake.set()

    def _clear(self, key: str) -> None:
        """Delete a whole hash, behind: what was pending for it is dropped, what follows is
        written after the delete."""
        dropped = self._pending.pop(key, None)
        if dropped is not None:
            self._count -= len(dropped.fields)
        self._pending[key] = _Hash(cleared=True)
        self._wake.set()

    async def flush(self) -> None:
        """Write what is pending; raises RedisError (and keeps it pending) if Redis is down."""
        batch, self._pending, self._count = self._pending, {}, 0
        if not batch:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, pending in batch.items():
                    if pending.cleared:
                        pipe.delete(key)
                    for field, (value, bound) in pending.fields.items():
                        if value is None:
                            pipe.hdel(key, field)
                        elif bound:
                            await self._bounded(keys=[key], args=[field, value, bound],
                                                client=pipe)
                        else:
                            pipe.hset(key, field, value)
                await pipe.execute()
        except RedisError:
            for key, old in batch.items():  # what was written meanwhile comes after
                new = self._pending.get(key)
                self._pending[key] = old if new is None else old.then(new)
            self._count = sum(len(p.fields) for p in self._pending.values())
            raise

    @unavailable
    async def get(self, station_id: str) -> StationState | None:
        if self._pending:
            await self.flush()  # read your own writes
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(station_id))
            for table in ("connectors", "configuration"):
                pipe.hgetall(self._key(station_id, table))
            main, connectors, configuration = await pipe.execute()
        if not (main or connectors or configuration):
            return None
        boot = json.loads(main[b"boot"]) if b"boot" in main else None
        return StationState(
            station_id=station_id,
            boot=Boot(**boot) if boot else None,
            booted_at=float(main[b"bootedAt"]) if b"bootedAt" in main else None,
            protocol=main[b"protocol"].decode() if b"protocol" in main else None,
            connectors={k.decode(): json.loads(v) for k, v in connectors.items()} or None,
            meter_values=json.loads(main[b"meterValues"]) if b"meterValues" in main else None,
            configuration={k.decode(): v.decode() for k, v in configuration.items()} or None,
        )

    # -- presence (csms.state.presence), read by the operator -------------------------------

    def connected(self, station_id: str, pod: str, protocol: str) -> None:
        key, now = self._key(station_id), repr(time.time())
        self._write(key, "pod", pod)
        self._write(key, "protocol", protocol)
        self._write(key, "connectedAt", now)
        self._write(key, "lastSeen", now)

    def disconnected(self, station_id: str) -> None:
        self._write(self._key(station_id), "disconnectedAt", repr(time.time()))

    def seen(self, station_id: str) -> None:
        self._write(self._key(station_id), "lastSeen", repr(time.time()))

    def rejected(self, station_id: str, reason: str) -> None:
        self._write(self._key(station_id), "lastRejection",
                    json.dumps({"reason": reason, "at": time.time()}))

    @tolerant
    async def record_protocol(self, station_id: str, version: str) -> None:
        key = self._key(station_id)
        pending = self._pending.get(key)
        if pending is not None and "protocol" in pending.fields:
            last: str | bytes | None = pending.fields["protocol"][0]
        else:  # the one read on a connection: a new session's first write may depend on it
            last = await self._redis.hget(key, "protocol")
        if last is not None and (last.decode() if isinstance(last, bytes) else last) != version:
            self._new_session(station_id)
        self._write(key, "protocol", version)

    def _new_session(self, station_id: str) -> None:
        self._clear(self._key(station_id, "connectors"))
        self._write(self._key(station_id), "meterValues", None)

    async def record_boot(self, station_id: str, boot: dict[str, Any]) -> None:
        self._new_session(station_id)
        key = self._key(station_id)
        self._write(key, "boot", json.dumps({k: boot.get(k) for k in Boot._fields}))
        self._write(key, "bootedAt", repr(time.time()))

    async def record_connector(self, station_id: str, key: str, status: dict[str, Any]) -> None:
        self._write(self._key(station_id, "connectors"), key, json.dumps(status),
                    MAX_CONNECTORS)

    async def record_meter_values(self, station_id: str, values: dict[str, Any]) -> None:
        self._write(self._key(station_id), "meterValues", json.dumps(values))

    async def record_configuration(self, station_id: str, key: str, outcome: str) -> None:
        self._write(self._key(station_id, "configuration"), key, outcome, MAX_CONFIG_KEYS)


class RedisTransactionIds:
    """Blocks of ids from one counter (INCRBY): unique across every pod and restart, one
    round trip per `block` ids, and a spare block so ids keep coming while Redis is down."""

    def __init__(self, redis: Redis, prefix: str = "csms:", block: int = 100) -> None:
        self._redis = redis
        self._key = f"{prefix}txid"
        self._block = block
        self._ids: list[range] = []  # the current block, then the spare

    async def _fetch(self) -> None:
        top = int(await self._redis.incrby(self._key, self._block))
        self._ids.append(range(top - self._block + 1, top + 1))

    async def next_id(self) -> int:
        while self._ids and not self._ids[0]:
            self._ids.pop(0)
        if len(self._ids) < 2:
            try:
                await self._fetch()
            except RedisError as exc:
                if not self._ids:
                    raise Unavailable(f"no transaction ids while Redis is down: {exc}") from exc
        current = self._ids[0]
        value, self._ids[0] = current[0], current[1:]
        if value > INT32_MAX:
            raise OverflowError("transaction ids exhausted the 32-bit range")
        return value
