"""Registry, station state and transaction ids in a real Redis."""

from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.cluster.state import RedisRegistry, RedisStationStore, RedisTransactionIds
from csms.state.errors import Unavailable
from csms.state.registry import load_stations
from csms.state.stations import MAX_CONNECTORS, StationState

MANIFEST = """
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: cp-1}
spec:
  securityProfile: 1
  password: plain-text-secret-1
  protocols: [ocpp2.0.1]
  authorization: {idTokens: [A]}
  configuration: {OCPPCommCtrlr.HeartbeatInterval: 60}
"""


async def test_the_registry_round_trips_and_holds_no_plain_password(
    redis: Redis, tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(MANIFEST)
    (entry,) = load_stations(path)
    registry = RedisRegistry(redis)
    await registry.replace([entry])
    assert await registry.get("cp-1") == entry
    assert await registry.get("nobody") is None
    assert [e.station_id for e in await registry.all()] == ["cp-1"]
    for key in await redis.keys("*"):
        for value in (await redis.hgetall(key)).values():
            assert b"plain-text-secret-1" not in value
    await registry.replace([])
    assert await registry.get("cp-1") is None


async def test_station_state_is_recorded_and_bounded(redis: Redis) -> None:
    store = RedisStationStore(redis)
    assert await store.get("cp") is None
    await store.record_boot("cp", {"vendor": "v", "model": "m", "reason": "PowerUp"})
    for n in range(MAX_CONNECTORS + 10):
        await store.record_connector("cp", str(n), {"status": "Available"})
    await store.record_configuration("cp", "A.B", "Accepted")
    await store.record_meter_values("cp", {"evseId": 1})
    state = await store.get("cp")
    assert state is not None
    view = state.view()
    assert view["boot"] == {"vendor": "v", "model": "m", "reason": "PowerUp"}
    assert len(view["connectors"]) == MAX_CONNECTORS  # a station cannot grow it unbounded
    assert view["configuration"] == {"A.B": "Accepted"}
    assert view["lastMeterValues"] == {"evseId": 1}


async def test_transaction_ids_are_unique_across_pods(redis: Redis) -> None:
    pod_a, pod_b = RedisTransactionIds(redis), RedisTransactionIds(redis)
    a = [await pod_a.next_id() for _ in range(250)]  # more than two blocks each
    b = [await pod_b.next_id() for _ in range(250)]
    assert len(set(a) | set(b)) == 500
    assert a == sorted(a) and b == sorted(b)  # each pod's ids rise


async def test_state_written_behind_waits_for_redis_and_is_bounded(tmp_path: Path) -> None:
    from csms.observability.counters import count
    from tests.polling import eventually
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5)
    store = RedisStationStore(client, max_pending=3)
    await store.start()
    try:
        await store.record_meter_values("cp", {"v": 1})
        await eventually(lambda: client.hget("csms:station:cp", "meterValues"))
        server.stop()
        for n in range(5):  # the latest value per field is kept
            await store.record_meter_values("cp", {"v": n})
        await store.record_connector("cp", "1", {"status": "Charging"})
        lost = count("csms_state_writes_lost")
        await store.record_connector("cp", "2", {"status": "Available"})
        await store.record_connector("cp", "3", {"status": "Available"})  # a 4th field
        assert count("csms_state_writes_lost") == lost + 1
        server.start()  # empty, as after a restart

        async def state_now() -> StationState | None:
            try:
                return await store.get("cp")
            except Unavailable:  # a pooled connection from before the restart
                return None

        state = await eventually(state_now, 10)
        assert state.meter_values == {"v": 4}
        assert set(state.connectors or {}) == {"1", "2"}
    finally:
        await store.close()
        await client.aclose()
        server.stop()


async def test_a_new_session_written_behind_replaces_the_old_one_in_order(
        tmp_path: Path) -> None:
    from tests.polling import eventually
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5)
    store = RedisStationStore(client)
    await store.start()
    try:
        await store.record_protocol("cp", "1.6")
        await store.record_connector("cp", "1", {"status": "Charging"})
        await store.record_meter_values("cp", {"v": 1})
        await store.record_configuration("cp", "K", "Accepted")
        await eventually(lambda: client.hget("csms:station:cp:connectors", "1"))
        server.stop()
        # While Redis is down: the old session's last writes, a reboot, the new session's.
        await store.record_connector("cp", "2", {"status": "Faulted"})
        await store.record_boot("cp", {"vendor": "v", "model": "m"})
        await store.record_connector("cp", "3", {"status": "Available"})
        assert store.pending == 4  # 3, meterValues (a delete), boot, bootedAt; not 2
        server.start()  # empty, as after a restart: put the old session back first
        async with Redis.from_url(server.url) as fresh:
            await fresh.hset("csms:station:cp:connectors", "1", '{"status": "Charging"}')
            await fresh.hset("csms:station:cp", mapping={"meterValues": "{}", "protocol": "1.6"})

        async def state_now() -> StationState | None:
            try:
                await store.flush()
            except RedisError:  # a pooled connection from before the restart
                return None
            return await store.get("cp")

        state = await eventually(state_now, 10)
        assert state.connectors == {"3": {"status": "Available"}}
        assert state.meter_values is None and state.boot is not None
        # A connection with the same version keeps the session; another one ends it.
        await store.record_protocol("cp", "1.6")
        assert (await store.get("cp")).connectors  # type: ignore[union-attr]
        await store.record_protocol("cp", "2.0.1")
        state = await store.get("cp")
        assert state is not None and state.connectors is None and state.protocol == "2.0.1"
    finally:
        await store.close()
        await client.aclose()
        server.stop()
