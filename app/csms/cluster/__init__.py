"""Cluster mode: the state interfaces of `csms.state` backed by Redis.

The only package that imports redis. `CSMS_REDIS_URL` (or `csms serve --redis-url`) makes
`create_app` use these instead of the in-memory implementations; handlers, API and tests
are the same.
"""

from redis.asyncio import Redis

from csms.cluster.events import RedisEventBus
from csms.cluster.state import RedisRegistry, RedisStationStore, RedisTransactionIds
from csms.services import Services


def redis_services(url: str, prefix: str = "csms:") -> Services:
    """Services whose registry, station state, transaction ids and events live in Redis."""
    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                           health_check_interval=30)
    events = RedisEventBus(redis, prefix)
    services = Services(registry=RedisRegistry(redis, prefix),
                        stations=RedisStationStore(redis, prefix),
                        transactions=RedisTransactionIds(redis, prefix), events=events)
    services.resources.append(events)
    services.resources.append(_Closing(redis))
    return services


class _Closing:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def start(self) -> None:
        await self._redis.ping()  # fail at start-up, not at the first station

    async def close(self) -> None:
        await self._redis.aclose()


__all__ = ["RedisEventBus", "RedisRegistry", "RedisStationStore", "RedisTransactionIds",
           "redis_services"]
