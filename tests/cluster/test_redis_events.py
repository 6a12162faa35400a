"""Events on a Redis Stream: written in batches, buffered while Redis is down, bounded."""

from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.cluster.events import RedisEventBus, event_of
from tests.polling import eventually
from tests.redis_server import RedisServer


async def test_published_events_reach_the_stream_in_order(redis: Redis) -> None:
    bus = RedisEventBus(redis, maxlen=1000)
    await bus.start()
    try:
        for n in range(5):
            bus.publish("CP", "2.0.1", "Heartbeat", {"n": n})

        async def all_written() -> bool:
            return int(await redis.xlen(bus.stream)) == 5

        await eventually(all_written)
        entries = await redis.xrange(bus.stream)
        events = [event_of(fields) for _, fields in entries]
        assert [e.payload["n"] for e in events] == [0, 1, 2, 3, 4]
        assert {(e.station_id, e.version, e.action) for e in events} == {
            ("CP", "2.0.1", "Heartbeat")}
    finally:
        await bus.close()


async def test_while_redis_is_down_events_are_buffered_within_a_bound(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    bus = RedisEventBus(client, buffer=3)
    try:
        server.stop()
        for n in range(5):
            bus.publish("CP", "1.6", "Heartbeat", {"n": n})
        try:
            await bus.flush()
            raise AssertionError("flush should fail while Redis is down")
        except RedisError:
            pass
        assert bus.pending == 3 and bus.dropped == 2  # the oldest were dropped and counted
        server.start()  # same port, empty: as after a restart that lost every key
        await bus.flush()
        entries = await client.xrange(bus.stream)
        assert [event_of(f).payload["n"] for _, f in entries] == [2, 3, 4]
    finally:
        await client.aclose()
        server.stop()
