"""Three `csms serve --redis-url` pods behind a real nginx (`hash $request_uri consistent`)
and a real Redis, driven by `csms simulate` and the `ocpp` library's client."""

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
from ocpp.v16 import call as call16

from tests.e2e.conftest import Server, api, start_server, stop_server
from tests.e2e.stations import connected
from tests.nginx_server import Nginx
from tests.polling import eventually, wait_until
from tests.redis_server import RedisServer

RESET = {"action": "Reset", "payload": {"type": "Soft"}}
# For `csms simulate`'s stations, which reboot on a Reset (they reconnect, as real ones do).
AVAILABLE = {"action": "ChangeAvailability", "payload": {"connectorId": 0, "type": "Operative"}}


class Cluster:
    def __init__(self, tmp: Path, pods: int = 3) -> None:
        (tmp / "redis").mkdir()
        self.store = RedisServer(tmp / "redis").start()
        self.pods: list[Server] = []
        for n in range(pods):
            folder = tmp / f"pod{n}"
            folder.mkdir()
            self.pods.append(start_server(
                folder, "", "--accept-unknown", "--redis-url", self.store.url, "--lease", "3",
                "--drain-spread", "1.5", "--graceful-timeout", "12", "--call-timeout", "5",
                "--ping-interval", "2", "--ping-timeout", "2"))
        (tmp / "nginx").mkdir()
        self.nginx = Nginx(tmp / "nginx", [p.port for p in self.pods]).start()
        self.redis = redis.Redis.from_url(self.store.url)
        self.sims: list[subprocess.Popen[str]] = []

    def stop(self) -> None:
        for sim in self.sims:
            sim.kill()
            sim.wait()
        self.nginx.stop()
        for pod in self.pods:
            if pod.proc.poll() is None:
                stop_server(pod)
            elif not pod.log_file.closed:
                pod.log_file.close()
        self.redis.close()
        self.store.stop()

    def simulate(self, count: int, prefix: str) -> list[str]:
        """A fleet of `count` OCPP 1.6 stations connecting through nginx; their ids."""
        self.sims.append(subprocess.Popen(
            [sys.executable, "-m", "csms", "simulate", "--url", self.nginx.ws, "--stations",
             str(count), "--version", "1.6", "--prefix", prefix, "--heartbeat", "1",
             "--session-every", "2", "--meter-every", "1", "--connect-rate", "200",
             "--no-display"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
        return [f"{prefix}{n:04d}" for n in range(1, count + 1)]

    def owner_pid(self, sid: str) -> int | None:
        value = self.redis.get(f"csms:owner:{sid}")
        return int(value.decode().split(" ")[0].rsplit("-", 2)[1]) if value else None

    def pod_of(self, sid: str) -> Server | None:
        pid = self.owner_pid(sid)
        return next((p for p in self.pods if p.proc.pid == pid and p.proc.poll() is None),
                    None)

    def all_held(self, sids: list[str], pods: list[Server] | None = None) -> bool:
        live = pods if pods is not None else self.pods
        return all(self.pod_of(s) in live for s in sids)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop()


def calls_succeed(cluster: Cluster, sids: list[str], pods: list[Server]) -> bool:
    for pod in pods:
        for sid in sids:
            response = api(pod, "POST", f"/api/v1/stations/{sid}/calls", json=AVAILABLE)
            if response.status_code != 200:
                return False
            assert response.json()["result"] == {"status": "Accepted"}
    return True


def test_api_calls_sent_to_every_pod_reach_stations_on_every_pod(cluster: Cluster) -> None:
    sids = cluster.simulate(12, "EVERY-")
    wait_until(lambda: cluster.all_held(sids), 30, "12 simulated stations connected")
    holders = {cluster.pod_of(s).port for s in sids}  # type: ignore[union-attr]
    assert len(holders) >= 2, "nginx spread the stations over the pods"
    for pod in cluster.pods:
        for sid in sids:
            response = api(pod, "POST", f"/api/v1/stations/{sid}/calls", json=AVAILABLE)
            assert response.status_code == 200, (pod.port, sid, response.text)
            assert response.json() == {"action": "ChangeAvailability",
                                       "result": {"status": "Accepted"}}
        view = api(pod, "GET", f"/api/v1/stations/{sids[0]}").json()
        assert view["connected"] is True and view["pod"]
        missing = api(pod, "POST", "/api/v1/stations/NOBODY/calls", json=RESET)
        assert missing.status_code == 404


async def test_a_station_reconnecting_to_another_pod_takes_over(cluster: Cluster) -> None:
    first, second, third = cluster.pods
    async with websockets.connect(f"{first.ws}/MOVER", subprotocols=["ocpp1.6"]) as old:
        # Held by the first pod before it reconnects (its claim is asynchronous).
        await eventually(lambda: cluster.owner_pid("MOVER") == first.proc.pid, 10)
        async with connected(second.ws, "MOVER", "1.6") as new:
            # The old socket is closed by its pod as soon as the new connection exists.
            await asyncio.wait_for(old.wait_closed(), 10)
            assert old.close_code == 1000
            response = await asyncio.to_thread(
                api, third, "POST", "/api/v1/stations/MOVER/calls", json=RESET)
            assert response.status_code == 200
            assert new.resets_answered == 1
            assert cluster.pod_of("MOVER") is second


async def test_queued_commands_are_delivered_on_connect_and_expired_ones_are_not(
    cluster: Cluster,
) -> None:
    first, second, _ = cluster.pods
    queued = []
    for body in ({**RESET, "queue": True, "ttl": 1},  # expires before the station comes
                 {"action": "ChangeConfiguration", "payload": {"key": "A", "value": "1"},
                  "queue": True, "ttl": 600},
                 {**RESET, "queue": True, "ttl": 600}):
        response = await asyncio.to_thread(api, first, "POST",
                                           "/api/v1/stations/LATE/calls", json=body)
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/api/v1/commands/{response.json()['id']}"
        queued.append(response.json()["id"])

    def status(pod: Server, command: str) -> str:
        return str(api(pod, "GET", f"/api/v1/commands/{command}").json()["status"])

    await eventually(lambda: status(second, queued[0]) == "expired", 10)
    assert status(second, queued[1]) == "queued"
    # The queue's depth, cluster-wide on every pod: two wait (the first expired).
    for pod in cluster.pods:
        await eventually(lambda pod=pod: metric_is(pod, "csms_commands_queued", 2.0), 12)
    async with connected(second.ws, "LATE", "1.6") as station:
        await eventually(lambda: status(first, queued[2]) == "answered", 10)
        assert station.configuration == {"A": "1"} and station.resets_answered == 1
        answered = (await asyncio.to_thread(api, first, "GET",
                                            f"/api/v1/commands/{queued[2]}")).json()
        assert answered["result"] == {"status": "Accepted"}
        assert status(first, queued[0]) == "expired"
        # Queued while connected to another pod: delivered at once.
        late = await asyncio.to_thread(api, first, "POST", "/api/v1/stations/LATE/calls",
                                       json={**RESET, "queue": True})
        await eventually(lambda: status(first, late.json()["id"]) == "answered", 10)
        assert station.resets_answered == 2
        await eventually(lambda: metric_is(first, "csms_commands_queued", 0.0), 12)
    bad = await asyncio.to_thread(api, first, "POST", "/api/v1/stations/LATE/calls",
                                  json={"action": "Reset", "payload": {"type": "Sometime"},
                                        "queue": True})
    assert bad.status_code == 422
    unknown = await asyncio.to_thread(api, first, "GET", "/api/v1/commands/nope")
    assert unknown.status_code == 404


def test_after_kill_9_the_stations_reconnect_elsewhere_and_calls_reach_them(
    fresh: Cluster,
) -> None:
    sids = fresh.simulate(9, "KILL-")
    wait_until(lambda: fresh.all_held(sids), 30, "9 simulated stations connected")
    victim = max(fresh.pods, key=lambda p: sum(fresh.pod_of(s) is p for s in sids))
    moved = [s for s in sids if fresh.pod_of(s) is victim]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    survivors = [p for p in fresh.pods if p is not victim]
    # Their stale entries (lease still running) do not block the reconnects.
    wait_until(lambda: fresh.all_held(sids, survivors), 30, "stations to move")
    assert moved
    assert calls_succeed(fresh, moved, survivors)


async def test_sigterm_drains_in_batches_and_releases_ownership(fresh: Cluster) -> None:
    pod = fresh.pods[0]
    closed: dict[str, tuple[float, int | None]] = {}
    sids = [f"DRAIN-{n}" for n in range(12)]

    async def hold(sid: str) -> None:
        async with websockets.connect(f"{pod.ws}/{sid}", subprotocols=["ocpp1.6"]) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
            closed[sid] = (time.monotonic(), ws.close_code)

    holders = [asyncio.create_task(hold(s)) for s in sids]
    await eventually(lambda: all(fresh.owner_pid(s) == pod.proc.pid for s in sids), 10)
    async with connected(pod.ws, "SLOW", "1.6") as slow:
        slow.reset_delay = 1.0
        in_flight = asyncio.create_task(asyncio.to_thread(
            api, fresh.pods[1], "POST", "/api/v1/stations/SLOW/calls", json=RESET))
        await eventually(lambda: slow.resets_started == 1, 10)
        started = time.monotonic()
        pod.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: httpx.get(f"{pod.http}/readyz").status_code == 503, 5)
        assert await metric(pod, "csms_draining") == 1.0  # what the stuck-drain alert reads
        assert await metric(pod, "csms_ready") == 0.0
        refused = await asyncio.to_thread(
            httpx.get, f"{pod.http}/ocpp/LATECOMER",
            headers={"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                     "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "ocpp1.6"})
        assert refused.status_code == 503 and "retry-after" in refused.headers
        response = await in_flight
        assert response.status_code == 200  # the in-flight call finished first
        await asyncio.gather(*holders)
    exit_code = await asyncio.to_thread(pod.proc.wait, 15)
    assert exit_code in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 12  # bounded by --graceful-timeout
    assert {code for _, code in closed.values()} == {1012}
    times = sorted(t for t, _ in closed.values())
    assert times[-1] - times[0] >= 0.5, "closed in batches spread over time, not at once"
    assert all(fresh.redis.get(f"csms:owner:{s}") is None for s in sids)


async def metric(pod: Server, name: str) -> float:
    """One sample of the pod's /metrics, by its name and labels as exposed."""
    text = (await asyncio.to_thread(httpx.get, f"{pod.http}/metrics")).text
    return float(next(line.split()[-1] for line in text.splitlines()
                      if line.startswith(name + " ")))


async def metric_is(pod: Server, name: str, value: float) -> bool:
    return await metric(pod, name) == value


async def metric_above(pod: Server, name: str, value: float) -> bool:
    return await metric(pod, name) > value


async def test_redis_stopped_and_restarted_mid_run(fresh: Cluster) -> None:
    first, second, _ = fresh.pods
    sids = fresh.simulate(6, "REDIS-")
    wait_until(lambda: fresh.all_held(sids), 30, "6 simulated stations connected")
    async with connected(first.ws, "LOCAL", "1.6") as local:
        await eventually(lambda: fresh.owner_pid("LOCAL") == first.proc.pid, 5)
        # The runtime's gauges: the heartbeat's round trips, the loop's lag, GC pauses.
        await eventually(lambda: metric_above(first, "csms_redis_roundtrip_seconds_count", 0), 5)
        for name in ("csms_event_loop_lag_seconds_count", "process_resident_memory_bytes",
                     'csms_gc_pause_seconds_count{pass="young"}', "process_open_fds"):
            assert await metric(first, name) > 0, name
        fresh.store.stop()
        # Connected stations are still served; calls for them on their own pod work.
        beat = await asyncio.wait_for(local.call(call16.Heartbeat()), 5)
        assert beat.current_time
        same_pod = await asyncio.to_thread(api, first, "POST", "/api/v1/stations/LOCAL/calls",
                                           json=RESET)
        assert same_pod.status_code == 200
        cross_pod = await asyncio.to_thread(api, second, "POST",
                                            "/api/v1/stations/LOCAL/calls", json=RESET)
        assert cross_pod.status_code == 503  # at once, not after a timeout
        metrics = (await asyncio.to_thread(httpx.get, f"{second.http}/metrics")).text
        assert 'csms_routed_calls_total{status="503"} 1.0' in metrics

        # What the alerts read: Redis unreachable, events held back, still ready.
        await eventually(lambda: metric_is(first, "csms_redis_reachable", 0.0), 10)
        assert await metric(first, 'csms_redis_errors_total{operation="heartbeat"}') > 0
        assert await metric(first, 'csms_writes_waiting{kind="events"}') > 0
        assert await metric(first, "csms_ready") == 1.0
        assert await metric(first, "csms_draining") == 0.0
        fresh.store.start()  # empty: every key is gone
        await eventually(lambda: fresh.all_held([*sids, "LOCAL"]), 30)
        await eventually(lambda: metric_is(first, "csms_redis_reachable", 1.0), 10)
        await eventually(lambda: metric_is(first, 'csms_writes_waiting{kind="events"}', 0.0),
                         10)

        async def cross_pod_ok() -> bool:
            response = await asyncio.to_thread(api, second, "POST",
                                               "/api/v1/stations/LOCAL/calls", json=RESET)
            return response.status_code == 200

        await eventually(cross_pod_ok, 15)
    assert calls_succeed(fresh, sids[:3], fresh.pods)
    events: Any = fresh.redis.xlen("csms:events")
    assert events > 0  # buffered events flushed into the new Redis


def test_each_worker_is_its_own_owner_and_calls_reach_the_other_worker(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis").start()
    server = start_server(tmp_path, "", "--accept-unknown", "--redis-url", store.url,
                          "--workers", "2")
    client = redis.Redis.from_url(store.url)
    sims = subprocess.Popen(
        [sys.executable, "-m", "csms", "simulate", "--url", server.ws, "--stations", "16",
         "--version", "2.0.1", "--prefix", "W-", "--heartbeat", "1", "--no-display"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sids = [f"W-{n:04d}" for n in range(1, 17)]

        def owners() -> set[str]:
            values = [client.get(f"csms:owner:{s}") for s in sids]
            return {v.decode().split(" ")[0] for v in values if v} if all(values) else set()

        wait_until(lambda: len(owners()) == 2, 30, "stations on both workers")
        # Whichever worker takes the API request, the call reaches the station.
        for sid in sids:
            response = api(server, "POST", f"/api/v1/stations/{sid}/calls",
                           json={"action": "Reset", "payload": {"type": "Immediate"}})
            assert response.status_code == 200, response.text
    finally:
        sims.kill()
        sims.wait()
        stop_server(server)
        client.close()
        store.stop()


def test_more_than_one_worker_needs_redis(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "csms", "serve", "--workers", "2"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--redis-url" in result.stderr
