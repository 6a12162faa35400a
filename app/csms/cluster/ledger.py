"""The ledger in Redis (cluster mode): a record is written when `update` returns, and durable
as Redis makes it: with `appendonly yes` and `appendfsync always` Redis writes its AOF to disk
before it replies, which is what the promise needs (csms warns at start-up when it can read
another setting). Changes are group-committed: all those queued while the previous batch was
in flight go in one MULTI/EXEC, so a batch is written whole or not at all.

Keys, under the prefix:
  tx:{key}             the record (JSON); expires `retention` seconds after it ends
  tx:at                zset, every record as "{sort_time} {key}" (lexicographic = time order)
  tx:station:{id}      the same, for one station
  tx:token:{idToken}   the same, for one id token
  tx:active:{id}       set: the station's transactions not ended
  tx:start:{print}     a 1.6 StartTransaction's fingerprint -> its key (retried starts)

A station's messages are handled by the one pod that holds it (ownership, fenced), so the
read-modify-write of its records happens in one process, in order.
"""

import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from csms.ledger.batching import GroupCommit, Op
from csms.ledger.model import ACTIVE, Transaction
from csms.ledger.store import MAX_LIMIT, Query, sort_time
from csms.state.errors import Unavailable

logger = logging.getLogger("csms.ledger")
DAY = 86_400
WATCH_ATTEMPTS = 3


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _member(tx: Transaction) -> str:
    return f"{sort_time(tx)} {tx.key}"


class RedisLedger(GroupCommit):
    store_errors = (RedisError,)

    def __init__(self, redis: Redis, prefix: str = "csms:", retention_days: float = 400) -> None:
        super().__init__()
        self._redis = redis
        self._p = f"{prefix}tx:"
        self._retention = int(retention_days * DAY)

    async def start(self) -> None:
        await self._check_persistence()
        self._start_writer()

    async def _check_persistence(self) -> None:
        try:
            config = await self._redis.config_get("append*")
        except RedisError:  # managed Redis often forbids CONFIG: documented, not checked
            return
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            logger.warning(
                "Redis runs with appendonly=%s appendfsync=%s: a transaction acknowledged "
                "to a station can be lost if Redis stops; the ledger needs appendonly yes "
                "and appendfsync always", config.get("appendonly"), config.get("appendfsync"))

    async def close(self) -> None:
        await self._stop_writer()

    async def _commit(self, batch: list[Op]) -> list[Transaction | Exception]:
        for _ in range(WATCH_ATTEMPTS - 1):
            try:
                return await self._commit_once(batch)
            except WatchError:  # another pod wrote one of these records meanwhile: again
                continue
        return await self._commit_once(batch)

    async def _commit_once(self, batch: list[Op]) -> list[Transaction | Exception]:
        """Read what the batch touches under WATCH (one round trip), apply the changes in
        order, write everything in one MULTI/EXEC (a second), which fails if a record read
        was written by anyone else in between (during a takeover, two pods may briefly both
        take messages of one station)."""
        keys = list(dict.fromkeys(op.key for op in batch))
        prints = list(dict.fromkeys(op.fingerprint for op in batch if op.fingerprint))
        names = [self._p + k for k in keys] + [f"{self._p}start:{f}" for f in prints]
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*names)
            found = await pipe.mget(names)  # at once: a watched pipeline runs immediately
            stored = {k: Transaction.loads(v)
                      for k, v in zip(keys, found[:len(keys)], strict=True) if v is not None}
            started = {f: _text(v) for f, v in zip(prints, found[len(keys):], strict=True)
                       if v is not None}
            before = {k: _member(tx) for k, tx in stored.items()}
            touched: dict[str, Transaction] = {}
            new_prints: dict[str, str] = {}
            results: list[Transaction | Exception] = []
            for op in batch:
                if op.fingerprint is not None and op.fingerprint in started:
                    known = touched.get(started[op.fingerprint]) or stored.get(
                        started[op.fingerprint]) or await self.get(started[op.fingerprint])
                    results.append(known if known is not None
                                   else LookupError(op.fingerprint))
                    continue
                try:
                    record = op.change(touched.get(op.key) or stored.get(op.key))
                except Exception as exc:  # reported to its own caller
                    results.append(exc)
                    continue
                if op.fingerprint is not None:
                    started[op.fingerprint] = new_prints[op.fingerprint] = op.key
                touched[op.key] = record
                results.append(record)
            if touched or new_prints:
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                for key, record in touched.items():
                    self._write(pipe, record, before.get(key))
                for fingerprint, key in new_prints.items():
                    pipe.set(f"{self._p}start:{fingerprint}", key, ex=self._retention)
                await pipe.execute()
        return results

    def _write(self, pipe: "Redis", record: Transaction, old_member: str | None) -> None:
        member, p = _member(record), self._p
        indexes = [f"{p}at", f"{p}station:{record.station_id}"]
        if record.id_token:
            indexes.append(f"{p}token:{record.id_token}")
        if old_member is not None and old_member != member:
            for index in indexes:
                pipe.zrem(index, old_member)
        for index in indexes:
            pipe.zadd(index, {member: 0})
        if record.status == ACTIVE:
            pipe.set(p + record.key, record.dumps())
            pipe.sadd(f"{p}active:{record.station_id}", record.key)
        else:
            pipe.set(p + record.key, record.dumps(), ex=self._retention)
            pipe.srem(f"{p}active:{record.station_id}", record.key)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> Transaction | None:
        try:
            raw = await self._redis.get(self._p + key)
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return Transaction.loads(raw) if raw is not None else None

    async def active(self, station_id: str) -> list[Transaction]:
        try:
            keys = sorted(_text(k) for k in await self._redis.smembers(
                f"{self._p}active:{station_id}"))
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return [tx for tx in await self._records(keys) if tx is not None][:MAX_LIMIT]

    async def _records(self, keys: list[str]) -> list[Transaction | None]:
        if not keys:
            return []
        try:
            raws = await self._redis.mget([self._p + k for k in keys])
        except RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return [Transaction.loads(r) if r is not None else None for r in raws]

    async def query(self, query: Query) -> list[Transaction]:
        """Walk the narrowest index in time order, filtering the rest, until `limit`."""
        if query.station_id is not None:
            index = f"{self._p}station:{query.station_id}"
        elif query.id_token is not None:
            index = f"{self._p}token:{query.id_token}"
        else:
            index = f"{self._p}at"
        since, until = query.bounds()
        low = "-"
        if query.after is not None:
            low = f"({query.after.at} {query.after.key}"
        if since is not None and (low == "-" or since > low[1:]):
            low = f"[{since}"
        high = f"({until}" if until is not None else "+"
        found: list[Transaction] = []
        chunk = max(query.limit * 2, 100)
        while len(found) < query.limit:
            try:
                members = await self._redis.zrangebylex(index, low, high, 0, chunk)
            except RedisError as exc:
                raise Unavailable(str(exc)) from exc
            if not members:
                break
            names = [_text(m) for m in members]
            keys = [name.split(" ", 1)[1] for name in names]
            for name, record in zip(names, await self._records(keys), strict=True):
                if record is None:  # expired: drop it from the index on the way
                    with contextlib.suppress(RedisError):
                        await self._redis.zrem(index, name)
                elif query.matches(record) and len(found) < query.limit:
                    found.append(record)
            low = f"({names[-1]}"
        return found
