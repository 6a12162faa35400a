"""Cluster mode: the state interfaces of `csms.state` backed by Redis.

The only package that imports redis. `CSMS_REDIS_URL` (or `csms serve --redis-url`) makes
`create_app` use these instead of the in-memory implementations; handlers, API and tests
are the same.
"""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from csms.cluster.commands import RedisCommandStore
from csms.cluster.events import RedisEventBus
from csms.cluster.gateway import GatewayRouter
from csms.cluster.ledger import RedisLedger
from csms.cluster.routing import RedisRouter
from csms.cluster.state import RedisRegistry, RedisStationStore, RedisTransactionIds
from csms.serverless.connections_api import ConnectionsApi
from csms.services import Services
from csms.state.connections import Connections

MAX_CONNECTIONS = 64  # per process; one is held by the inbox reader's blocking read


def connect(url: str, max_connections: int = MAX_CONNECTIONS) -> Redis:
    """A client whose bounded pool waits for a free connection rather than failing under a
    burst, and which retries once, quickly, then fails: callers answer 503 at once rather
    than hang while Redis is down."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, socket_timeout=5,
        socket_connect_timeout=1, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        retry_on_error=[ConnectionError, TimeoutError])
    return Redis.from_pool(pool)  # closing the client closes its pool


def redis_services(url: str, prefix: str = "csms:", *, lease: float = 30.0,
                   call_timeout: float = 30.0, owner_prefix: str | None = None,
                   retention_days: float = 400, gateway: bool = False,
                   gateway_token: str | None = None) -> Services:
    """Services whose registry, station state, transaction ids and ledger, events, command
    queue and call routing live in Redis; with `gateway`, stations' sockets are on a
    websocket gateway (`csms.serverless`) and calls reach them through it."""
    redis = connect(url)
    connections = Connections()
    events = RedisEventBus(redis, prefix)
    stations = RedisStationStore(redis, prefix)
    commands = RedisCommandStore(redis, prefix)
    router: RedisRouter
    if gateway:
        router = GatewayRouter(redis, prefix, connections, commands,
                               ConnectionsApi(gateway_token), lease=lease,
                               call_timeout=call_timeout, owner_prefix=owner_prefix)
    else:
        router = RedisRouter(redis, prefix, connections, lease=lease,
                             call_timeout=call_timeout, owner_prefix=owner_prefix)
    ledger = RedisLedger(redis, prefix, retention_days)
    services = Services(registry=RedisRegistry(redis, prefix),
                        stations=stations, ledger=ledger,
                        transactions=RedisTransactionIds(redis, prefix), events=events,
                        connections=connections, commands=commands,
                        router=router, presence=stations)
    # Started in this order, closed in the reverse one: the router gives up ownership and
    # the events are flushed before the client closes.
    services.resources += [_Closing(redis), events, stations, ledger, router]
    return services


class _Closing:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def start(self) -> None:
        await self._redis.ping()  # fail at start-up, not at the first station

    async def close(self) -> None:
        await self._redis.aclose()


__all__ = ["GatewayRouter", "RedisCommandStore", "RedisEventBus", "RedisLedger", "RedisRegistry",
           "RedisRouter",
           "RedisStationStore", "RedisTransactionIds", "connect", "redis_services"]
