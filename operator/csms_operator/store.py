"""The operator's side of Redis: the registry the pods read, the live state they write, and
control messages to the pod holding a station (through its inbox, as cross-pod calls go)."""

import json
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from csms.cluster.routing import tell_owner
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

    async def live(self, station_id: str) -> Live:
        p = self._prefix
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(f"{p}owner:{station_id}")
            pipe.hgetall(f"{p}station:{station_id}")
            pipe.hgetall(f"{p}station:{station_id}:configuration")
            owner_value, main, outcomes = await pipe.execute()
        pod = owner_value.decode().split(" ")[0] if owner_value else None
        alive = bool(pod) and bool(await self.redis.exists(f"{p}pod:{pod}"))

        def text(field: bytes) -> str | None:
            value = main.get(field)
            return value.decode() if value is not None else None

        boot = json.loads(main[b"boot"]) if b"boot" in main else None
        return Live(
            connected=alive,
            pod=pod if alive else text(b"pod"),
            protocol=text(b"protocol"),
            last_seen=float(main[b"lastSeen"]) if b"lastSeen" in main else None,
            boot={k: v for k, v in boot.items() if v is not None} if boot else None,
            booted_at=float(main[b"bootedAt"]) if b"bootedAt" in main else None,
            outcomes={k.decode(): v.decode() for k, v in outcomes.items()},
            last_rejection=json.loads(main[b"lastRejection"])
            if b"lastRejection" in main else None,
        )
