"""Stations on the public port, the API, probes and metrics on an internal one that an
ingress never exposes; one port for everything when no internal port is set."""

import sys
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import STATIONS, Server, api, free_port, start_server, stop_server
from tests.e2e.stations import connected
from tests.redis_server import RedisServer

INTERNAL_PATHS = ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json",
                  "/api/v1/stations"]


async def check_split(server: Server) -> None:
    public = f"http://127.0.0.1:{server.port}"
    frame = {"content": '[2, "h", "Heartbeat", {}]', "headers": {"OCPP-Version": "ocpp1.6"}}
    async with connected(server.ws, "cp16", "1.6") as station, httpx.AsyncClient() as client:
        from ocpp.v16 import call as call16

        assert (await station.call(call16.Heartbeat())).current_time
        for path in INTERNAL_PATHS:
            assert (await client.get(public + path)).status_code == 404, path
            assert (await client.get(server.http + path)).status_code == 200, path
        # HTTP-posted frames are the stations' too.
        assert (await client.post(f"{public}/ocpp/cp16", **frame)).status_code == 200
        assert (await client.post(f"{server.http}/ocpp/cp16", **frame)).status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{server.http.replace('http', 'ws')}/ocpp/cp16",
                                      subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code == 404


async def test_stations_and_the_api_are_on_separate_ports(tmp_path: Path) -> None:
    server = start_server(tmp_path, STATIONS, "--internal-port", str(free_port()))
    try:
        await check_split(server)
        assert "API docs at http://127.0.0.1:" + str(server.internal_port) in server.output()
    finally:
        stop_server(server)


async def test_every_worker_serves_both_ports(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis").start()
    server = start_server(tmp_path, STATIONS, "--internal-port", str(free_port()),
                          "--workers", "2", "--redis-url", store.url)
    try:
        for _ in range(4):  # the kernel spreads connections over both workers
            await check_split(server)
    finally:
        stop_server(server)
        store.stop()


def test_one_port_serves_everything_by_default(server: Server) -> None:
    assert server.internal_port is None
    for path in INTERNAL_PATHS:
        assert api(server, "GET", path).status_code == 200, path


def test_the_internal_port_must_differ(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "csms", "serve", "--port", "9123",
                           "--internal-port", "9123"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert "CSMS_INTERNAL_PORT: expected a port other than CSMS_PORT" in done.stderr
