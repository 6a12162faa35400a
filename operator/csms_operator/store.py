"""The operator's side of Redis: the registry the pods read, the live state they write, and
control messages to the pod holding a station (through its inbox, as cross-pod calls go)."""

import json
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from csms.cluster.codec import entry_from_json
from csms.cluster.routing import owner_of, tell_owner
from csms.cluster.state import RedisRegistry
from csms.state.registry import StationEntry
from csms_operator.mapping import Live


class Store:
    def __init__(self, redis: Redis, prefix: str = "csms:") -> None:
        self.redis = redis
        self._prefix = prefix
        self.registry = RedisRegistry(redis, prefix)

    async def get(self, station_id: str) -> StationEntry | None:
        return await self.registry.get(station_id)

    async def put(self, entry: StationEntry) -> None:
        await self.registry.put(entry)

    async def remove(self, station_id: str) -> None:
        await self.registry.delete(station_id)

    async def forget_outcomes(self, station_id: str, keys: Iterable[str]) -> None:
        """Changed keys are pending again until the station answers for the new values."""
        keys = list(keys)
        if keys:
            await self.redis.hdel(f"{self._prefix}station:{station_id}:configuration", *keys)

    async def tell(self, station_id: str, kind: str, **fields: Any) -> str | None:
        """Send "evict" or "configure" to the pod holding the station; its owner id or None."""
        return await tell_owner(self.redis, self._prefix, station_id, {"kind": kind, **fields})

    async def many(self, station_ids: list[str]
                   ) -> list[tuple[StationEntry | None, Live]]:
        """Registry entry and live state of each station, in two pipelined round trips."""
        p = self._prefix
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in station_ids:
                pipe.hget(f"{p}registry", sid)
                pipe.get(f"{p}owner:{sid}")
                pipe.hgetall(f"{p}station:{sid}")
                pipe.hgetall(f"{p}station:{sid}:configuration")
            replies = await pipe.execute()
        rows = [replies[i:i + 4] for i in range(0, len(replies), 4)]
        pods = {owner_of(row[1]) for row in rows if row[1]}
        async with self.redis.pipeline(transaction=False) as pipe:
            for pod in pods:
                pipe.exists(f"{p}pod:{pod}")
            alive = {pod for pod, up in zip(pods, await pipe.execute(), strict=True) if up}
        return [(entry_from_json(raw) if raw else None, _live(owner, main, outcomes, alive))
                for raw, owner, main, outcomes in rows]

    async def live(self, station_id: str) -> Live:
        return (await self.many([station_id]))[0][1]


def _live(owner: bytes | None, main: dict[bytes, bytes], outcomes: dict[bytes, bytes],
          alive: set[str]) -> Live:
    pod = owner_of(owner) if owner else None
    connected = pod in alive

    def text(field: bytes) -> str | None:
        value = main.get(field)
        return value.decode() if value is not None else None

    boot = json.loads(main[b"boot"]) if b"boot" in main else None
    return Live(
        connected=connected,
        pod=pod if connected else text(b"pod"),
        protocol=text(b"protocol"),
        last_seen=float(main[b"lastSeen"]) if b"lastSeen" in main else None,
        boot={k: v for k, v in boot.items() if v is not None} if boot else None,
        booted_at=float(main[b"bootedAt"]) if b"bootedAt" in main else None,
        outcomes={k.decode(): v.decode() for k, v in outcomes.items()},
        last_rejection=json.loads(main[b"lastRejection"]) if b"lastRejection" in main else None,
    )
