"""`create_app(routers=[...])` under uvicorn in this process: the README's developer example."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from ocpp.v201 import call as call201

from csms import Context, Router, create_app
from csms.config import Settings
from csms.services import Services
from csms.state.registry import MemoryRegistry, StationEntry
from tests.e2e.stations import connected
from tests.polling import eventually

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=10)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def app_with(router: Router) -> Any:
    services = Services(registry=MemoryRegistry([StationEntry("CS-1", accept_all=True)]))
    return create_app([router], settings=Settings(), services=services), services


async def test_a_handler_that_calls_the_station_before_answering(make_session: Any) -> None:
    router = Router()
    asked: list[dict[str, Any]] = []

    @router.on("BootNotification")
    async def boot(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        reply = await context.call("GetVariables", {"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
        asked.append(reply)
        return {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 30}

    @router.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"status": "Accepted", "data": payload.get("data")}

    app, _ = app_with(router)
    async with serve(app) as port, connected(f"ws://127.0.0.1:{port}/ocpp", "CS-1", "2.0.1") as cs:
        cs.variables["OCPPCommCtrlr.HeartbeatInterval"] = "600"
        boot = await cs.call(call201.BootNotification(
            charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"))
        assert (boot.status, boot.interval) == ("Accepted", 30)
        transfer = await cs.call(call201.DataTransfer(vendor_id="acme", data="ping"))
        assert (transfer.status, transfer.data) == ("Accepted", "ping")
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"http://127.0.0.1:{port}/api/v1/stations/CS-1/calls",
                                      json={"action": "GetVariables", "payload": {
                                          "getVariableData": [{"component": {"name": "X"},
                                                               "variable": {"name": "Y"}}]}})
        assert reply.status_code == 200
        assert reply.json()["result"]["getVariableResult"][0]["attributeStatus"] == \
            "UnknownVariable"
    assert asked[0]["getVariableResult"][0]["attributeValue"] == "600"


async def test_every_accepted_message_and_connection_is_an_event() -> None:
    router = Router()
    app, services = app_with(router)
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async for event in services.events.subscribe():
            events.append((event.station_id, event.action))

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    async with serve(app) as port:
        async with connected(f"ws://127.0.0.1:{port}/ocpp", "CS-1", "2.0.1") as cs:
            await cs.call(call201.Heartbeat())
            await cs.call(call201.StatusNotification(
                timestamp="2026-01-01T00:00:00Z", connector_status="Available", evse_id=1,
                connector_id=1))
        await eventually(lambda: ("CS-1", "disconnected") in events)
    consumer.cancel()
    assert events == [("CS-1", "connected"), ("CS-1", "Heartbeat"),
                      ("CS-1", "StatusNotification"), ("CS-1", "disconnected")]
