"""Ownership and call routing between two in-process owners sharing a real Redis."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from csms.cluster.commands import RedisCommandStore
from csms.cluster.routing import RedisRouter
from csms.protocol.router import Router
from csms.protocol.session import Session
from csms.state.commands import MAX_QUEUED, Command, QueueFull
from csms.state.connections import Connections
from tests.conftest import SessionFactory, Wire
from tests.polling import eventually

PREFIX = "t:"


class Socket:
    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class Pod:
    def __init__(self, redis: Redis) -> None:
        self.connections = Connections()
        self.router = RedisRouter(redis, PREFIX, self.connections, lease=3.0, call_timeout=2.0)

    async def connect(self, make_session: SessionFactory, sid: str = "CP-1"
                      ) -> tuple[Session, Wire, Socket]:
        session, wire = make_session("2.0.1", Router())
        session.station_id = sid
        socket = Socket()
        await self.connections.add(session, socket)
        await self.router.claim(session)
        return session, wire, socket


@pytest.fixture
async def pods(redis: Redis) -> AsyncIterator[tuple[Pod, Pod]]:
    a, b = Pod(redis), Pod(redis)
    await a.router.start()
    await b.router.start()
    yield a, b
    await a.router.close()
    await b.router.close()


async def answer_next(wire: Wire, count: int, result: dict[str, Any], session: Session) -> None:
    call = (await wire.wait_for(count, 5))[count - 1]
    session.receive(orjson.dumps([3, call[1], result]))


async def test_a_call_made_on_any_pod_reaches_the_owner(
    pods: tuple[Pod, Pod], make_session: SessionFactory,
) -> None:
    a, b = pods
    session, wire, _ = await a.connect(make_session)
    assert await b.router.owner("CP-1") == a.router.owner_id
    call = asyncio.create_task(b.router.call("CP-1", "Reset", {"type": "Immediate"}, None))
    await answer_next(wire, 1, {"status": "Accepted"}, session)
    outcome = await call
    assert outcome.status == 200 and outcome.body == {"status": "Accepted"}
    invalid = await b.router.call("CP-1", "Reset", {"type": "Sometime"}, None)
    assert invalid.status == 422  # checked by the owner against the station's version
    assert (await b.router.call("CP-9", "Reset", {"type": "Immediate"}, None)).status == 404


async def test_a_new_connection_on_another_pod_closes_the_old_socket(
    pods: tuple[Pod, Pod], make_session: SessionFactory, redis: Redis,
) -> None:
    a, b = pods
    old, _, old_socket = await a.connect(make_session)
    await b.connect(make_session)
    await eventually(lambda: old_socket.closed is not None)
    assert old_socket.closed == (1000, "superseded by a newer connection")
    assert old.closed is not None  # its pending and queued CALLs fail at once
    owner = await redis.get(f"{PREFIX}owner:CP-1")
    assert owner.decode() == f"{b.router.owner_id} 2"


async def test_renewal_fences_off_an_owner_that_missed_the_takeover(
    pods: tuple[Pod, Pod], make_session: SessionFactory, redis: Redis,
) -> None:
    a, b = pods
    _, _, socket = await a.connect(make_session)
    # A newer connection elsewhere whose message to us was lost.
    epoch = await redis.hincrby(f"{PREFIX}epochs", "CP-1", 1)
    await redis.set(f"{PREFIX}owner:CP-1", f"{b.router.owner_id} {epoch}")
    await a.router.renew()
    assert socket.closed == (1000, "superseded by a newer connection")


async def test_ownership_comes_back_after_redis_lost_every_key(
    pods: tuple[Pod, Pod], make_session: SessionFactory, redis: Redis,
) -> None:
    a, b = pods
    session, wire, socket = await a.connect(make_session)
    await redis.flushdb()
    assert (await b.router.call("CP-1", "Reset", {"type": "Immediate"}, None)).status == 404
    await a.router.renew()
    await redis.set(f"{PREFIX}pod:{a.router.owner_id}", "1")  # the heartbeat's part
    call = asyncio.create_task(b.router.call("CP-1", "Reset", {"type": "Immediate"}, None))
    await answer_next(wire, 1, {"status": "Accepted"}, session)
    assert (await call).status == 200 and socket.closed is None
    # A reconnect after the restart still wins over the re-claimed epoch.
    _, _, newer = await b.connect(make_session)
    await eventually(lambda: socket.closed is not None)
    assert newer.closed is None


async def test_a_dead_owner_gives_503_at_once(
    pods: tuple[Pod, Pod], make_session: SessionFactory, redis: Redis,
) -> None:
    a, b = pods
    await a.connect(make_session)
    await redis.delete(f"{PREFIX}pod:{a.router.owner_id}")  # its heartbeat stopped
    outcome = await b.router.call("CP-1", "Reset", {"type": "Immediate"}, 30)
    assert outcome.status == 503 and "unreachable" in outcome.body


async def test_an_owner_that_never_takes_the_call_gives_503_and_the_call_is_withdrawn(
    pods: tuple[Pod, Pod], make_session: SessionFactory, redis: Redis,
) -> None:
    a, b = pods
    _, wire, _ = await a.connect(make_session)
    for task in a.router._loops:  # alive (heartbeat key) but not reading its inbox
        task.cancel()
    await redis.set(f"{PREFIX}pod:{a.router.owner_id}", "1", px=60_000)
    outcome = await b.router.call("CP-1", "Reset", {"type": "Immediate"}, 0.2)
    assert outcome.status == 503 and "did not take" in outcome.body
    assert await redis.llen(f"{PREFIX}inbox:{a.router.owner_id}") == 0
    assert wire.frames == []


async def test_a_station_that_does_not_answer_gives_504(
    pods: tuple[Pod, Pod], make_session: SessionFactory,
) -> None:
    a, b = pods
    _, wire, _ = await a.connect(make_session)
    outcome = await b.router.call("CP-1", "Reset", {"type": "Immediate"}, 0.3)
    assert outcome.status == 504 and len(wire.frames) == 1


async def test_calls_fail_fast_with_503_when_redis_is_unreachable(
    make_session: SessionFactory,
) -> None:
    down = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    pod = Pod(down)
    session, wire, _ = await pod.connect(make_session)  # claim fails: retried later
    assert pod.router._unclaimed == {"CP-1"}
    outcome = await pod.router.call("CP-2", "Reset", {"type": "Immediate"}, None)
    assert outcome.status == 503
    local = asyncio.create_task(pod.router.call("CP-1", "Reset", {"type": "Immediate"}, None))
    await answer_next(wire, 1, {"status": "Accepted"}, session)
    assert (await local).status == 200  # a station connected here is still served
    await down.aclose()


async def test_the_redis_command_queue_keeps_order_and_bounds(redis: Redis) -> None:
    store = RedisCommandStore(redis, PREFIX)
    first, second = (Command.new("CP-1", "Reset", {"type": "Soft"}, 60) for _ in range(2))
    await store.add(first)
    await store.add(second)
    taken = await store.pop("CP-1")
    assert taken is not None and taken.id == first.id
    taken.status = "sent"
    await store.save(taken)
    assert (await store.get(first.id)).status == "sent"  # type: ignore[union-attr]
    await store.requeue(taken)
    ids = [(await store.pop("CP-1")).id for _ in range(2)]  # type: ignore[union-attr]
    assert ids == [first.id, second.id] and await store.pop("CP-1") is None
    assert 0 < await redis.ttl(f"{PREFIX}command:{first.id}") <= 60 + 86_400
    for _ in range(MAX_QUEUED):
        await store.add(Command.new("CP-2", "Reset", {"type": "Soft"}, 60))
    with pytest.raises(QueueFull):
        await store.add(Command.new("CP-2", "Reset", {"type": "Soft"}, 60))


def test_the_owner_id_starts_with_the_pod_name() -> None:
    from csms.cluster.routing import new_owner_id

    first, second = new_owner_id("csms-central-7d9f-abcde"), new_owner_id("csms-central-7d9f-abcde")
    assert first.startswith("csms-central-7d9f-abcde-") and first != second
