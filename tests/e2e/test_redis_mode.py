"""Two `csms serve --redis-url` processes sharing one real Redis: one registry, one state,
cluster-unique transaction ids, one event stream. (Call routing between pods comes next.)"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from ocpp.v16 import call as call16

from tests.e2e.conftest import Server, api, basic, start_server, stop_server
from tests.e2e.stations import a_new_session_starts_clean, connected
from tests.redis_server import RedisServer

STATIONS = """
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: pod-a-station}
spec: {protocols: [ocpp1.6], authorization: {acceptAll: true}}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: pod-b-station}
spec:
  protocols: [ocpp1.6]
  securityProfile: 1
  password: never-stored-in-plain
  authorization: {acceptAll: true}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: upgraded}
spec: {authorization: {acceptAll: true}}
"""
NOW = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Server,
                                                                        Server]]:
    store = RedisServer(tmp_path_factory.mktemp("redis")).start()
    pods = [start_server(tmp_path_factory.mktemp(f"pod{n}"), STATIONS,
                         "--redis-url", store.url) for n in range(2)]
    yield store, pods[0], pods[1]
    for pod in pods:
        stop_server(pod)
    store.stop()


async def test_pods_share_registry_state_ids_and_events(
    cluster: tuple[RedisServer, Server, Server],
) -> None:
    store, pod_a, pod_b = cluster
    ids = []
    async with connected(pod_a.ws, "pod-a-station", "1.6") as a, connected(
            pod_b.ws, "pod-b-station", "1.6",
            additional_headers=basic("pod-b-station", "never-stored-in-plain")) as b:
        for n, cp in enumerate((a, b, a, b)):
            started = await cp.call(call16.StartTransaction(
                connector_id=1, id_tag="T", meter_start=n, timestamp=NOW))
            ids.append(started.transaction_id)
        await a.call(call16.BootNotification(charge_point_vendor="Acme",
                                             charge_point_model="A1"))
    assert len(set(ids)) == 4  # unique across the two pods

    # What pod A recorded, pod B's API shows.
    view = await asyncio.to_thread(api, pod_b, "GET", "/api/v1/stations/pod-a-station")
    assert view.status_code == 200
    assert view.json()["boot"] == {"vendor": "Acme", "model": "A1"}

    client = redis.Redis.from_url(store.url)
    try:
        def actions() -> list[tuple[str, str]]:
            entries = client.xrange("csms:events")
            return [(f[b"station"].decode(), f[b"action"].decode()) for _, f in entries]

        from tests.polling import wait_until

        wait_until(lambda: ("pod-b-station", "disconnected") in actions(), what="events")
        assert ("pod-a-station", "BootNotification") in actions()
        assert ("pod-b-station", "StartTransaction") in actions()
        payloads = [json.loads(f[b"payload"]) for _, f in client.xrange("csms:events")]
        assert payloads  # JSON, readable by any consumer
        for key in client.keys("*"):
            kind = client.type(key)
            values = (client.hvals(key) if kind == b"hash" else
                      [v for _, f in client.xrange(key) for v in f.values()]
                      if kind == b"stream" else client.zrange(key, 0, -1) if kind == b"zset"
                      else list(client.smembers(key)) if kind == b"set"
                      else [client.get(key) or b""])
            assert all(b"never-stored-in-plain" not in v for v in values)
    finally:
        client.close()


async def test_a_new_session_on_another_pod_starts_clean(
    cluster: tuple[RedisServer, Server, Server],
) -> None:
    _, pod_a, pod_b = cluster

    def reader(pod: Server) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def view() -> dict[str, Any]:
            answer = await asyncio.to_thread(api, pod, "GET", "/api/v1/stations/upgraded")
            assert answer.status_code == 200
            body: dict[str, Any] = answer.json()
            return body
        return view

    # Pod B learns the last session's version from Redis, and clears what pod A wrote.
    await a_new_session_starts_clean("upgraded", (pod_a.ws, reader(pod_a)),
                                     (pod_b.ws, reader(pod_b)))


def test_a_pod_refuses_to_start_without_its_redis(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="csms serve"):
        start_server(tmp_path, STATIONS, "--redis-url", "redis://127.0.0.1:1/0")
