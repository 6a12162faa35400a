"""Connection rules: newest wins, frame limits, binary frames, pings, compression."""

import asyncio
import base64
import os
import signal
import socket
from pathlib import Path

import pytest
import websockets
from ocpp.v16 import call as call16
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import STATIONS, Server, api, start_server, stop_server
from tests.e2e.stations import connected
from tests.polling import eventually


async def test_a_second_connection_wins_and_the_first_is_closed(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp2.0.1"]) as old:
        async with connected(server.ws, "any", "2.0.1"):
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(old.recv(), 5)
            assert old.close_code == 1000
            assert "superseded" in (old.close_reason or "")
            status = (await asyncio.to_thread(api, server, "POST", "/api/v1/stations/any/calls",
                                              json={"action": "Reset",
                                                    "payload": {"type": "Immediate"}})).status_code
            assert status == 200  # the call reached the new connection


async def test_pending_calls_on_a_superseded_connection_fail_clearly(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp2.0.1"]) as old:
        pending = asyncio.create_task(asyncio.to_thread(
            api, server, "POST", "/api/v1/stations/any/calls",
            json={"action": "Reset", "payload": {"type": "Immediate"}}))
        frame = await asyncio.wait_for(old.recv(), 5)  # our station never answers it
        assert '"Reset"' in str(frame)
        async with connected(server.ws, "any", "2.0.1"):
            response = await pending
        assert response.status_code == 404
        assert "superseded" in response.json()["detail"]


async def test_an_oversized_frame_closes_with_1009(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]) as ws:
        await ws.send('[2, "big", "DataTransfer", {"vendorId": "x", "data": "%s"}]' % ("a" * 5000))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_a_binary_frame_closes_with_1003(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(b'[2, "bin", "Heartbeat", {}]')
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1003


async def test_a_frame_just_under_the_limit_is_served(server: Server) -> None:
    async with connected(server.ws, "any", "1.6") as cp:
        assert (await cp.call(call16.Heartbeat())).current_time


async def test_permessage_deflate_is_accepted_when_offered(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp2.0.1"],
                                  compression="deflate") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in extensions
        await ws.send('[2, "h", "Heartbeat", {}]')
        assert '"currentTime"' in await asyncio.wait_for(ws.recv(), 5)


def _silent_station(server: Server, sid: str) -> socket.socket:
    """A client that completes the handshake and then never reads or answers pings."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ocpp/{sid} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
                  ).encode())
    assert b" 101 " in sock.recv(4096).split(b"\r\n")[0]
    return sock


async def test_a_dead_connection_is_dropped_after_unanswered_pings(server: Server) -> None:
    sock = _silent_station(server, "any")
    def gone() -> bool:
        listed = api(server, "GET", "/api/v1/stations").json()
        return not [s for s in listed if s["id"] == "any"]

    try:  # pings every 0.5 s with a 0.5 s pong timeout (the fixture's settings)
        await eventually(lambda: asyncio.to_thread(gone), timeout=10)
    finally:
        sock.close()
    server.wait_for_log("any disconnected (ping_timeout)")


async def test_sigterm_closes_station_sockets_with_1012(tmp_path: Path) -> None:
    server = start_server(tmp_path, STATIONS)
    try:
        async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]) as ws:
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1012
        # uvicorn re-raises the signal once shut down: exit by SIGTERM, after a clean shutdown.
        assert await asyncio.to_thread(server.proc.wait, 10) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()
        assert "any disconnected (draining)" in server.output()
    finally:
        stop_server(server)


async def test_each_disconnect_is_logged_and_counted_with_its_real_reason(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, STATIONS)
    try:
        async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]) as first:
            async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]):
                await first.wait_closed()  # superseded by the second
        server.wait_for_log("any disconnected (normal)")  # the second closed it, with 1000
        async with websockets.connect(f"{server.ws}/rpc16", subprotocols=["ocpp1.6"]) as ws:
            rpc16 = "metadata: {name: rpc16}\nspec: {"
            server.stations.write_text(STATIONS.replace(rpc16, rpc16 + "enabled: false, "))
            server.proc.send_signal(signal.SIGHUP)
            await ws.wait_closed()
            assert ws.close_code == 1008
        async with websockets.connect(f"{server.ws}/cs21", subprotocols=["ocpp2.1"]) as ws:
            await ws.close(4321, "invented")
        server.wait_for_log("cs21 disconnected (other)")
        metrics = api(server, "GET", "/metrics").text
        for version, reason in (("1.6", "superseded"), ("1.6", "normal"), ("1.6", "evicted"),
                                ("2.1", "other")):
            assert (f'csms_disconnections_total{{reason="{reason}",version="{version}"}} 1.0'
                    in metrics), reason
        log = server.output()
        assert "any disconnected (superseded)" in log and "rpc16 disconnected (evicted)" in log
    finally:
        stop_server(server)


async def test_a_deeply_nested_call_is_answered_and_the_connection_stays_up(
    server: Server,
) -> None:
    # The reported frame: 255 levels inside a payload that fails its schema (~530 bytes)
    # used to crash the connection (1006) without an answer.
    deep = "[" * 255 + '"x"' + "]" * 255
    async with websockets.connect(f"{server.ws}/any", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(f'[2, "deep", "BootNotification", {{"chargePointVendor": {deep}, '
                      '"chargePointModel": "m"}]')
        answer = await asyncio.wait_for(ws.recv(), 5)
        assert answer.startswith('[4,"deep","FormationViolation","frame is nested deeper')
        await ws.send('[2, "after", "Heartbeat", {}]')
        assert (await asyncio.wait_for(ws.recv(), 5)).startswith('[3,"after",')
