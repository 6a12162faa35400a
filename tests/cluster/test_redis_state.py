"""Registry, station state and transaction ids in a real Redis."""

from pathlib import Path

from redis.asyncio import Redis

from csms.cluster.state import RedisRegistry, RedisStationStore, RedisTransactionIds
from csms.state.registry import load_stations
from csms.state.stations import MAX_CONNECTORS

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
    await store.open_transaction("cp", "t1", {"meterStart": 1})
    merged = await store.update_transaction("cp", "t1", {"seqNo": 2})
    assert merged == {"meterStart": 1, "seqNo": 2}
    assert await store.update_transaction("cp", "missing", {"seqNo": 2}) is None
    await store.record_meter_values("cp", {"evseId": 1})
    state = await store.get("cp")
    assert state is not None
    view = state.view()
    assert view["boot"] == {"vendor": "v", "model": "m", "reason": "PowerUp"}
    assert len(view["connectors"]) == MAX_CONNECTORS  # a station cannot grow it unbounded
    assert view["configuration"] == {"A.B": "Accepted"}
    assert view["transactions"] == {"t1": {"meterStart": 1, "seqNo": 2}}
    assert view["lastMeterValues"] == {"evseId": 1}
    closed = await store.close_transaction("cp", "t1", {"meterStop": 9})
    assert closed == {"meterStart": 1, "seqNo": 2, "meterStop": 9}
    state = await store.get("cp")
    assert state is not None and state.view()["transactions"] == {}


async def test_transaction_ids_are_unique_across_pods(redis: Redis) -> None:
    pod_a, pod_b = RedisTransactionIds(redis), RedisTransactionIds(redis)
    a = [await pod_a.next_id() for _ in range(250)]  # more than two blocks each
    b = [await pod_b.next_id() for _ in range(250)]
    assert len(set(a) | set(b)) == 500
    assert a == sorted(a) and b == sorted(b)  # each pod's ids rise
