"""Serverless mode end to end: a real `csms gateway`, two gateway-mode backends behind a real
nginx that spreads requests round-robin (no stickiness), a real Redis, and the `ocpp`
library's stations for OCPP 1.6, 2.0.1 and 2.1."""

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import (
    STATIONS,
    Server,
    basic,
    free_port,
    launch,
    start_gateway,
    start_server,
    stop_server,
)
from tests.e2e.stations import connected
from tests.nginx_server import Nginx, Route
from tests.polling import eventually, wait_until
from tests.redis_server import RedisServer

TOKEN = "gateway-token-of-the-tests"
NOW = "2026-01-01T00:00:00Z"
RESET = {"action": "Reset", "payload": {"type": "Soft"}}


@dataclass
class Deployment:
    store: RedisServer
    backends: list[Server]
    nginx: Nginx
    gateway: Server

    @property
    def ws(self) -> str:
        return self.gateway.ws

    def stop(self) -> None:
        stop_server(self.gateway)
        self.nginx.stop()
        for backend in self.backends:
            stop_server(backend)
        self.store.stop()


def start_backend(folder: Path, store: RedisServer, embedded: bool, stations: str,
                  env: dict[str, str]) -> Server:
    """`csms serve --mode gateway`, or (embedded) an app of our own around csms."""
    if not embedded:
        return start_server(folder, stations, "--mode", "gateway", "--redis-url", store.url,
                            "--call-timeout", "5", CSMS_GATEWAY_TOKEN=TOKEN,
                            CSMS_LOG_LEVEL="debug", **env)
    path = folder / "stations.yaml"
    path.write_text(stations)
    port = free_port()
    return launch(folder, ["tests.e2e.gateway_app:app", "--factory", "--host", "127.0.0.1",
                           "--port", str(port), "--lifespan", "on"],
                  Server(port, None, path, folder / "server.log", None),
                  {"CSMS_MODE": "gateway", "CSMS_REDIS_URL": store.url,
                   "CSMS_STATIONS": str(path), "CSMS_GATEWAY_TOKEN": TOKEN,
                   "CSMS_CALL_TIMEOUT": "5", **env,
                   "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])},
                  module="uvicorn")


def deploy(tmp: Path, embedded: bool = False, stations: str = STATIONS,
           gateway_args: tuple[str, ...] = (), ca: ssl.SSLContext | None = None,
           backend_env: dict[str, str] | None = None) -> Deployment:
    for name in ("redis", "backend0", "backend1", "nginx", "gateway"):
        (tmp / name).mkdir()
    with contextlib.ExitStack() as undo:  # what started is stopped if the rest fails
        store = RedisServer(tmp / "redis").start()
        undo.callback(store.stop)
        backends = []
        for n in range(2):
            backends.append(start_backend(tmp / f"backend{n}", store, embedded, stations,
                                          backend_env or {}))
            undo.callback(stop_server, backends[-1])
        nginx = Nginx(tmp / "nginx", [b.port for b in backends], route=Route(hash_by=""))
        nginx.start()
        undo.callback(nginx.stop)
        gateway = start_gateway(tmp / "gateway", f"http://127.0.0.1:{nginx.port}",
                                "--ping-interval", "1", "--ping-timeout", "1",
                                "--max-frame-size", "4096", *gateway_args, ca=ca,
                                CSMS_GATEWAY_TOKEN=TOKEN, CSMS_LOG_LEVEL="debug")
        undo.pop_all()
    return Deployment(store, backends, nginx, gateway)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = deploy(tmp_path_factory.mktemp("serverless"))
    yield d
    d.stop()


@contextlib.asynccontextmanager
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as c:
        yield c


async def call(server: Server, station: str, body: dict[str, Any]) -> httpx.Response:
    async with client(server) as c:
        return await c.post(f"/api/v1/stations/{station}/calls", json=body)


async def status_of(url: str, **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(url, **kwargs):
            pass
    return caught.value


def counted(backend: Server, name: str, **labels: str) -> float:
    """The sum of the backend's series of `name` that have these labels (its /metrics)."""
    text = httpx.get(f"{backend.http}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] == name and all(f'{k}="{v}"' in series
                                               for k, v in labels.items()):
            total += float(value)
    return total


def served(backend: Server, action: str) -> float:
    """How many station CALLs of `action` this backend answered."""
    return counted(backend, "csms_ocpp_messages_total", action=action, direction="inbound")


# -- the handshake ---------------------------------------------------------------------------

async def test_handshake_refusals_are_the_websocket_endpoints(deployment: Deployment) -> None:
    ws = deployment.ws
    assert (await status_of(f"{ws}/nobody", subprotocols=["ocpp1.6"])).response.status_code \
        == 404
    assert (await status_of(f"{ws}/retired", subprotocols=["ocpp1.6"])).response.status_code \
        == 404
    assert (await status_of(f"{ws}/bad%ZZ", subprotocols=["ocpp1.6"])).response.status_code \
        == 400
    for headers in ({}, basic("secure", "wrong-password-123")):
        refused = await status_of(f"{ws}/secure", subprotocols=["ocpp1.6"],
                                  additional_headers=headers)
        assert refused.response.status_code == 401
        assert refused.response.headers["WWW-Authenticate"].startswith("Basic")
    refused = await status_of(f"{ws}/tls-only", subprotocols=["ocpp1.6"],
                              additional_headers=basic("tls-only", "correct-horse-battery"))
    assert refused.response.status_code == 403
    async with websockets.connect(f"{ws}/secure", subprotocols=["ocpp1.6"],
                                  additional_headers=basic("secure", "correct-horse-battery")
                                  ) as station:
        assert station.subprotocol == "ocpp1.6"


async def test_no_agreed_subprotocol_is_accepted_then_closed_1002(
        deployment: Deployment) -> None:
    async with websockets.connect(f"{deployment.ws}/cp16", subprotocols=["ocpp2.0.1"]) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002


async def test_the_backend_and_the_connections_api_want_the_token(
        deployment: Deployment) -> None:
    backend = deployment.backends[0]
    async with client(backend) as c:
        refused = await c.post("/gateway/connect", headers={
            "X-Connection-Id": "forged", "X-Gateway-Endpoint": "http://127.0.0.1:1",
            "X-Station-Path": "/ocpp/cp16", "Sec-WebSocket-Protocol": "ocpp1.6"})
        assert refused.status_code == 401
        wrong = await c.post("/gateway/message", content=b"[2,\"1\",\"Heartbeat\",{}]",
                             headers={"X-Connection-Id": "forged", "X-Gateway-Token": "x" * 26})
        assert wrong.status_code == 401
    async with connected(deployment.ws, "rpc16", "1.6"), httpx.AsyncClient(
            base_url=deployment.gateway.http) as gw:
        assert (await gw.post("/@connections/whatever", content=b"[]")).status_code == 403
        ok = await gw.post("/@connections/whatever", content=b"[]",
                           headers={"X-Gateway-Token": TOKEN})
        assert ok.status_code == 410  # no such connection


async def test_the_connections_api_sends_describes_and_closes(deployment: Deployment) -> None:
    store = redis.Redis.from_url(deployment.store.url)
    async with connected(deployment.ws, "rpc16", "1.6") as cp, httpx.AsyncClient(
            base_url=deployment.gateway.http, headers={"X-Gateway-Token": TOKEN}) as gw:
        await cp.call(call16.Heartbeat())
        connection = store.hget("csms:gw:station:rpc16", "connection").decode()
        info = (await gw.get(f"/@connections/{connection}")).json()
        assert info["connectedAt"].endswith("Z") and info["identity"]["sourceIp"] == \
            "127.0.0.1"
        sent = await gw.post(f"/@connections/{connection}",
                             content=b'[2,"by-hand","Reset",{"type":"Soft"}]')
        assert sent.status_code == 200
        await eventually(lambda: cp.resets_answered == 1)  # its answer matched nothing
        closed = await gw.delete(f"/@connections/{connection}",
                                 headers={"X-Close-Code": "4000", "X-Close-Reason": "bye"})
        assert closed.status_code == 204
        await asyncio.wait_for(cp._connection.wait_closed(), 5)
        assert (cp._connection.close_code, cp._connection.close_reason) == (4000, "bye")
        assert (await gw.get(f"/@connections/{connection}")).status_code == 410
    store.close()


# -- the flows -------------------------------------------------------------------------------

async def test_an_ocpp16_station_charges_across_both_backends(deployment: Deployment) -> None:
    a, b = deployment.backends
    before = served(a, "Heartbeat"), served(b, "Heartbeat")
    async with connected(deployment.ws, "cp16", "1.6") as cp:
        boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme",
                                                     charge_point_model="One"))
        assert (boot.status, boot.interval) == ("Accepted", 77)
        for _ in range(6):
            assert (await cp.call(call16.Heartbeat())).current_time.endswith("Z")
        assert (await cp.call(call16.Authorize(id_tag="TAG-OK"))).id_tag_info["status"] == \
            "Accepted"
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TAG-OK",
                                                      meter_start=100, timestamp=NOW))
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                         meter_value=[{"timestamp": NOW, "sampledValue": [
                                             {"value": "150", "unit": "Wh"}]}]))
        stop = await cp.call(call16.StopTransaction(meter_stop=200, timestamp=NOW,
                                                    transaction_id=start.transaction_id,
                                                    id_tag="TAG-OK"))
        assert stop.id_tag_info["status"] == "Accepted"
        # The boot's after-hook pushed the registry's configuration through the gateway.
        await eventually(lambda: len(cp.configuration) == 2)
        for backend in (a, b):
            async with client(backend) as c:
                view = (await c.get("/api/v1/stations/cp16")).json()
                assert view["connected"] is True and view["version"] == "1.6"
                assert view["pod"] == deployment.gateway.http
                ended = (await c.get("/api/v1/transactions", params={"stationId": "cp16"})).json()
                assert [t["meterStopWh"] for t in ended["transactions"]] == [200]
    # Round-robin: each backend answered some of the heartbeats.
    assert served(a, "Heartbeat") > before[0] and served(b, "Heartbeat") > before[1]


async def test_an_ocpp201_station_gets_its_variables_and_runs_a_transaction(
        deployment: Deployment) -> None:
    async with connected(deployment.ws, "cs201", "2.0.1") as cs:
        boot = await cs.call(call201.BootNotification(
            charging_station={"model": "Two", "vendor_name": "Acme"}, reason="PowerUp"))
        assert boot.status == "Accepted"
        for seq, kind in enumerate(("Started", "Ended")):
            result = await cs.call(call201.TransactionEvent(
                event_type=kind, timestamp=NOW, trigger_reason="Authorized", seq_no=seq,
                transaction_info={"transaction_id": "gw-201"},
                id_token={"id_token": "ANY", "type": "ISO14443"}))
            assert result.id_token_info["status"] == "Accepted"
        await eventually(lambda: len(cs.variables) == 2)
        assert cs.variables["OCPPCommCtrlr.HeartbeatInterval"] == "90"
        answer = await call(deployment.backends[1], "cs201", {
            "action": "GetVariables", "payload": {"getVariableData": [{
                "component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"}}]}})
        assert answer.status_code == 200
        assert answer.json()["result"]["getVariableResult"][0]["attributeValue"] == "true"


async def test_an_ocpp21_station_is_served_and_called(deployment: Deployment) -> None:
    async with connected(deployment.ws, "cs21", "2.1") as cs:
        boot = await cs.call(call21.BootNotification(
            charging_station={"model": "Three", "vendor_name": "Acme"}, reason="PowerUp"))
        assert boot.status == "Accepted"
        assert (await cs.call(call21.Heartbeat())).current_time.endswith("Z")
        for backend in deployment.backends:
            answer = await call(backend, "cs21", {"action": "Reset",
                                                  "payload": {"type": "Immediate"}})
            assert answer.status_code == 200 and answer.json()["result"] == {
                "status": "Accepted"}


async def test_the_api_lists_and_shows_the_stations_on_the_gateway(
        deployment: Deployment) -> None:
    async with connected(deployment.ws, "rpc16", "1.6"), \
            connected(deployment.ws, "rpc201", "2.0.1"):
        for backend in deployment.backends:
            async with client(backend) as c:
                listed = {s["id"]: s for s in (await c.get("/api/v1/stations")).json()}
                assert {"rpc16", "rpc201"} <= set(listed)
                assert listed["rpc201"]["version"] == "2.0.1" and listed["rpc201"]["connected"]
                assert listed["rpc16"]["pod"] == deployment.gateway.http
                assert listed["rpc16"]["connectedSince"].endswith("Z")
                shown = (await c.get("/api/v1/stations/rpc201")).json()
                assert shown["connectedSince"] == listed["rpc201"]["connectedSince"]

    async def gone() -> bool:
        async with client(deployment.backends[0]) as c:
            listed = {s["id"] for s in (await c.get("/api/v1/stations")).json()}
            shown = (await c.get("/api/v1/stations/rpc16")).json()
        return not {"rpc16", "rpc201"} & listed and shown["connected"] is False

    await eventually(gone)


# -- calls to stations -----------------------------------------------------------------------

async def test_api_calls_on_either_backend_take_turns_at_the_station(
        deployment: Deployment) -> None:
    async with connected(deployment.ws, "rpc16", "1.6") as cp:
        cp.reset_delay = 0.3
        in_flight, most = 0, 0
        original = cp.reset

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await original(*args, **kwargs)
            finally:
                in_flight -= 1

        cp.route_map["Reset"]["_on_action"] = counting
        answers = await asyncio.gather(*(call(backend, "rpc16", RESET)
                                         for backend in deployment.backends * 3))
        assert [a.status_code for a in answers] == [200] * 6
        assert cp.resets_answered == 6
        assert most == 1  # one outstanding CALL per station, whichever backend made it


async def test_errors_and_timeouts_are_those_of_the_websocket_mode(
        deployment: Deployment) -> None:
    a, b = deployment.backends
    assert (await call(a, "rpc16", RESET)).status_code == 404  # not connected
    async with connected(deployment.ws, "rpc16", "1.6") as cp:
        invalid = await call(a, "rpc16", {"action": "Reset", "payload": {"type": "Sideways"}})
        assert invalid.status_code == 422
        unknown = await call(b, "rpc16", {"action": "GetVariables", "payload": {}})
        assert unknown.status_code == 422
        refused = await call(a, "rpc16", {"action": "UnlockConnector",
                                          "payload": {"connectorId": 1}})
        assert refused.status_code == 502  # the library's station: NotImplemented
        assert refused.json()["detail"]["code"] == "NotImplemented"
        cp.reset_delay = 3.0
        slow = await call(b, "rpc16", {**RESET, "timeout": 1})
        assert slow.status_code == 504
        cp.reset_delay = 0.0
        # The late answer matches nothing; the station's turn is free at once.
        fast = await call(a, "rpc16", {**RESET, "timeout": 2})
        assert fast.status_code == 200
        await eventually(lambda: cp.resets_answered == 2, timeout=5)


async def test_a_station_that_leaves_mid_call_fails_the_call_at_once(
        deployment: Deployment) -> None:
    async with connected(deployment.ws, "rpc16", "1.6") as cp:
        cp.reset_delay = 30.0
        pending = asyncio.create_task(call(deployment.backends[0], "rpc16",
                                           {**RESET, "timeout": 20}))
        await eventually(lambda: cp.resets_started == 1)
    answer = await asyncio.wait_for(pending, 10)
    assert answer.status_code == 404
    assert "disconnected" in answer.json()["detail"]


async def test_queued_commands_reach_the_station_when_it_connects(
        deployment: Deployment) -> None:
    a, b = deployment.backends
    async with client(a) as c:
        queued = await c.post("/api/v1/stations/rpc16/calls", json={**RESET, "queue": True})
        assert queued.status_code == 202
        command = queued.json()["id"]
    async with connected(deployment.ws, "rpc16", "1.6") as cp:
        await cp.call(call16.Heartbeat())  # its first frame: the queue goes out
        await eventually(lambda: cp.resets_answered == 1)
        async with client(b) as c:
            done = await eventually(lambda: c.get(f"/api/v1/commands/{command}"))
            assert done.json()["status"] == "answered"
            # Queued while connected: delivered at once, from the backend that queued it.
            again = await c.post("/api/v1/stations/rpc16/calls", json={**RESET, "queue": True})
            assert again.status_code == 202
        await eventually(lambda: cp.resets_answered == 2)


async def test_newest_connection_wins(deployment: Deployment) -> None:
    async with connected(deployment.ws, "any", "1.6") as old:
        async with connected(deployment.ws, "any", "1.6") as new:
            closed = await asyncio.wait_for(old._connection.wait_closed(), 5)
            assert closed is None
            assert old._connection.close_code == 1000
            assert old._connection.close_reason == "superseded by a newer connection"
            assert (await new.call(call16.Heartbeat())).current_time
            answer = await call(deployment.backends[1], "any", RESET)
            assert answer.status_code == 200


async def test_the_gateway_closes_what_the_websocket_endpoint_closes(
        deployment: Deployment) -> None:
    ws = deployment.ws
    async with websockets.connect(f"{ws}/any", subprotocols=["ocpp1.6"]) as station:
        await station.send(b"\x00binary")
        with pytest.raises(ConnectionClosed):
            await station.recv()
        assert station.close_code == 1003
    async with websockets.connect(f"{ws}/any", subprotocols=["ocpp1.6"]) as station:
        await station.send('[2,"1","DataTransfer",{"vendorId":"' + "x" * 5000 + '"}]')
        with pytest.raises(ConnectionClosed):
            await station.recv()
        assert station.close_code == 1009
    async with websockets.connect(f"{ws}/any", subprotocols=["ocpp1.6"]) as station:
        await station.send("not json")  # answered by a backend, as over a websocket
        assert (await station.recv()).startswith('[4,"-1",')


async def test_a_station_that_stops_answering_pings_is_dropped(
        deployment: Deployment) -> None:
    sock = socket.create_connection(("127.0.0.1", deployment.gateway.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ocpp/any HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
                  ).encode())
    try:  # it never reads, never answers a ping: 1 s apart, 1 s to answer
        assert b" 101 " in sock.recv(4096).split(b"\r\n")[0]
        await eventually(lambda: any("any disconnected (ping_timeout)" in b.output()
                                     for b in deployment.backends), timeout=10)
    finally:
        sock.close()


async def test_a_connection_the_backends_forgot_is_closed(deployment: Deployment) -> None:
    store = redis.Redis.from_url(deployment.store.url)
    async with connected(deployment.ws, "any", "1.6") as cp:
        await cp.call(call16.Heartbeat())
        for key in store.scan_iter("csms:gw:conn:*"):
            store.delete(key)
        with contextlib.suppress(TimeoutError):  # refused: the gateway closes, never answers
            await asyncio.wait_for(cp.call(call16.Heartbeat()), 1)
        await asyncio.wait_for(cp._connection.wait_closed(), 5)
        assert cp._connection.close_code == 1008
    store.close()


async def test_a_registry_reload_closes_a_disabled_station(
        deployment: Deployment) -> None:
    async with connected(deployment.ws, "cs21", "2.1") as cs:
        await cs.call(call21.Heartbeat())
        for backend in deployment.backends:
            backend.stations.write_text(STATIONS.replace(
                "metadata: {name: cs21}\nspec:\n", "metadata: {name: cs21}\nspec:\n"
                "  enabled: false\n"))
            backend.proc.send_signal(signal.SIGHUP)
        await asyncio.wait_for(cs._connection.wait_closed(), 10)
        assert cs._connection.close_code == 1008
    for backend in deployment.backends:
        backend.stations.write_text(STATIONS)
        backend.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: all(b.output().count("registry reloaded") == 2
                           for b in deployment.backends), 5, "the registry restored")


async def test_the_operator_evicts_through_any_backend(deployment: Deployment) -> None:
    from redis.asyncio import Redis

    from csms.cluster.routing import tell_owner

    store = Redis.from_url(deployment.store.url)
    try:
        assert await tell_owner(store, "csms:", "cs201", {"kind": "evict"}) is None
        async with connected(deployment.ws, "cs201", "2.0.1") as cs:
            told = await tell_owner(store, "csms:", "cs201", {"kind": "evict"})
            assert told == deployment.gateway.http  # the station is on the gateway
            await asyncio.wait_for(cs._connection.wait_closed(), 10)
            assert cs._connection.close_code == 1008
    finally:
        await store.aclose()


async def test_no_secret_reaches_a_log_or_redis(deployment: Deployment) -> None:
    """Everything here logs at debug level: the gateway's token, a station's password and
    its Basic header must still appear nowhere."""
    password = "correct-horse-battery"
    secrets = [TOKEN, password, base64.b64encode(f"secure:{password}".encode()).decode()]
    async with connected(deployment.ws, "secure", "1.6",
                         additional_headers=basic("secure", password)) as cp:
        await cp.call(call16.Heartbeat())
        assert (await call(deployment.backends[0], "secure", RESET)).status_code == 200
    await status_of(f"{deployment.ws}/secure", subprotocols=["ocpp1.6"],
                    additional_headers=basic("secure", "wrong-password-123"))
    logs = "".join(server.output() for server in (deployment.gateway, *deployment.backends))
    assert "[redacted]" in logs  # the Basic header was logged, and redacted
    assert [s for s in secrets if s in logs] == []
    store = redis.Redis.from_url(deployment.store.url)
    try:
        dump = repr([(key, store.dump(key)) for key in store.scan_iter(count=1000)])
    finally:
        store.close()
    assert [s for s in secrets if s in dump] == []


# -- an embedded central system's own handler, and a backend that dies ---------------------

@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Deployment]:
    d = deploy(tmp_path, embedded=True)
    yield d
    d.stop()


async def test_a_handler_calls_the_station_before_it_answers(embedded: Deployment) -> None:
    async with connected(embedded.ws, "rpc16", "1.6") as cp:
        cp.configuration["Colour"] = "blue"
        # Round-robin: the station's answer to the handler's CALL reaches either backend,
        # the one waiting for it or the other, which hands it over through Redis.
        for _ in range(4):
            answer = await cp.call(call16.DataTransfer(vendor_id="csms.test",
                                                       message_id="ask-back", data="Colour"))
            assert answer.status == "Accepted"
            assert json.loads(answer.data)["configurationKey"] == [
                {"key": "Colour", "readonly": False, "value": "blue"}]
    answers = {route: sum(counted(b, "csms_gateway_answers_total", route=route)
                          for b in embedded.backends) for route in ("here", "relayed")}
    assert answers["here"] + answers["relayed"] == 4 and answers["relayed"] >= 1, answers


async def test_a_backend_killed_mid_call(embedded: Deployment) -> None:
    a, b = embedded.backends
    async with connected(embedded.ws, "rpc16", "1.6") as cp:
        cp.reset_delay = 1.0
        pending = asyncio.create_task(call(a, "rpc16", {**RESET, "timeout": 10}))
        await eventually(lambda: cp.resets_started == 1)
        a.proc.kill()
        with pytest.raises(httpx.HTTPError):  # its API client loses the backend
            await pending
        # The answer reaches the survivor, which frees the station's turn at once.
        await eventually(lambda: cp.resets_answered == 1)
        assert (await cp.call(call16.Heartbeat())).current_time.endswith("Z")
        cp.reset_delay = 0.0
        answer = await call(b, "rpc16", {**RESET, "timeout": 3})
        assert answer.status_code == 200
        assert cp.resets_answered == 2


async def test_sigterm_drains_the_gateway_with_1012(embedded: Deployment) -> None:
    gateway = embedded.gateway
    async with connected(embedded.ws, "rpc16", "1.6") as a, \
            connected(embedded.ws, "rpc201", "2.0.1") as b:
        await a.call(call16.Heartbeat())
        gateway.proc.send_signal(signal.SIGTERM)
        for station in (a, b):
            await asyncio.wait_for(station._connection.wait_closed(), 10)
            assert station._connection.close_code == 1012
            assert station._connection.close_reason == "service restart"
    # Drained, then ended by the signal as uvicorn ends a process: raised again, unhandled.
    assert await asyncio.to_thread(gateway.proc.wait, 10) == -signal.SIGTERM
    assert "draining 2 stations in 2 batches" in gateway.output()
    assert "Traceback" not in gateway.output()


async def test_without_a_backend_calls_fail_and_handshakes_wait(embedded: Deployment) -> None:
    async with websockets.connect(f"{embedded.ws}/any", subprotocols=["ocpp1.6"]) as station:
        for backend in embedded.backends:
            backend.proc.kill()
            backend.proc.wait(10)
        await station.send('[2,"h-1","Heartbeat",{}]')
        answer = json.loads(await asyncio.wait_for(station.recv(), 10))
        assert answer[:3] == [4, "h-1", "InternalError"]
    refused = await status_of(f"{embedded.ws}/any", subprotocols=["ocpp1.6"])
    assert refused.response.status_code == 503
    assert int(refused.response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("sid", "protocol"), [("rpc16", "ocpp1.6"), ("rpc201", "ocpp2.0.1")])
def test_the_strict_ocpp_rpc_client_passes_through_the_gateway(
        deployment: Deployment, sid: str, protocol: str) -> None:
    """The npm ocpp-rpc client in strict mode checks every reply against the schemas."""
    client = Path(__file__).parent / "ocpp_rpc_client" / "client.js"
    result = subprocess.run(["node", str(client), deployment.ws, sid, protocol],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flows ok" in result.stdout



async def test_tls_at_the_gateway_admits_profiles_2_and_3(tmp_path: Path) -> None:
    from tests.e2e.test_tls import PROFILE_3, Pki

    (tmp_path / "pki").mkdir()
    pki = Pki(tmp_path / "pki")
    internal = free_port()
    d = deploy(tmp_path, stations=PROFILE_3, ca=pki.client(), gateway_args=(
        "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key),
        "--ssl-ca-certs", str(pki.ca_file), "--internal-port", str(internal)),
        backend_env={"SSL_CERT_FILE": str(pki.ca_file)})  # they post to the gateway over TLS
    try:
        async with websockets.connect(
                f"{d.ws}/tls-only", ssl=pki.client(), subprotocols=["ocpp1.6"],
                additional_headers=basic("tls-only", "correct-horse-battery")) as station:
            assert station.subprotocol == "ocpp1.6"  # profile 2: TLS ends at the gateway
        for cert in (None, pki.stations["p3b"]):  # no certificate, another station's
            refused = await status_of(f"{d.ws}/p3a", ssl=pki.client(cert),
                                      subprotocols=["ocpp2.0.1"])
            assert refused.response.status_code == 401
        async with connected(d.ws, "p3a", "2.0.1", ssl=pki.client(pki.stations["p3a"])) as cs:
            boot = await cs.call(call201.BootNotification(
                charging_station={"model": "Two", "vendor_name": "Acme"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            answer = await call(d.backends[0], "p3a", {"action": "GetVariables", "payload": {
                "getVariableData": [{"component": {"name": "AuthCtrlr"},
                                     "variable": {"name": "Enabled"}}]}})
            assert answer.status_code == 200  # posted to the internal port, over TLS
        # Stations only on the public port; the @connections API only on the internal one.
        async with httpx.AsyncClient(verify=pki.client()) as c:
            public = await c.post(f"https://127.0.0.1:{d.gateway.port}/@connections/x",
                                  headers={"X-Gateway-Token": TOKEN})
            assert public.status_code == 404
    finally:
        d.stop()


async def test_while_redis_is_down_stations_get_clear_answers(embedded: Deployment) -> None:
    async with websockets.connect(f"{embedded.ws}/any", subprotocols=["ocpp1.6"]) as station:
        await station.send('[2,"h-1","Heartbeat",{}]')
        assert json.loads(await asyncio.wait_for(station.recv(), 10))[0] == 3
        embedded.store.kill()
        await station.send('[2,"h-2","Heartbeat",{}]')  # the backend answers 503
        answer = json.loads(await asyncio.wait_for(station.recv(), 10))
        assert answer[:3] == [4, "h-2", "InternalError"]
    refused = await status_of(f"{embedded.ws}/any", subprotocols=["ocpp1.6"])
    assert refused.response.status_code == 503
    assert int(refused.response.headers["Retry-After"]) > 0
