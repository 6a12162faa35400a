"""Stations built on the `ocpp` library's ChargePoint, one per version, for the e2e tests."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

NOW = "2026-01-01T00:00:00Z"


class Station16(ChargePoint16):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.configuration: dict[str, str] = {}
        self.reset_delay = 0.0
        self.resets_started = 0
        self.resets_answered = 0

    @on("ChangeConfiguration")
    def change_configuration(self, key: str, value: str) -> Any:
        self.configuration[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on("GetConfiguration")
    def get_configuration(self, key: list[str] | None = None) -> Any:
        known = [{"key": k, "readonly": False, "value": v} for k, v in self.configuration.items()
                 if key is None or k in key]
        return result16.GetConfiguration(configuration_key=known, unknown_key=[
            k for k in key or [] if k not in self.configuration])

    @on("Reset")
    async def reset(self, type: str) -> Any:
        self.resets_started += 1
        await asyncio.sleep(self.reset_delay)  # a slow station, for timeout tests
        self.resets_answered += 1
        return result16.Reset(status="Accepted")


class Station201(ChargePoint201):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.variables: dict[str, str] = {}

    @on("SetVariables")
    def set_variables(self, set_variable_data: list[dict[str, Any]]) -> Any:
        results = []
        for item in set_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            self.variables[key] = item["attribute_value"]
            results.append({"attribute_status": "Accepted", "component": item["component"],
                            "variable": item["variable"]})
        return result201.SetVariables(set_variable_result=results)

    @on("GetVariables")
    def get_variables(self, get_variable_data: list[dict[str, Any]]) -> Any:
        results = []
        for item in get_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            found = key in self.variables
            result = {"attribute_status": "Accepted" if found else "UnknownVariable",
                      "component": item["component"], "variable": item["variable"]}
            if found:
                result["attribute_value"] = self.variables[key]
            results.append(result)
        return result201.GetVariables(get_variable_result=results)

    @on("Reset")
    def reset(self, type: str, **_: Any) -> Any:
        return result201.Reset(status="Accepted")


class Station21(ChargePoint21):
    @on("Reset")
    def reset(self, type: str, **_: Any) -> Any:
        return result21.Reset(status="Accepted")


CLASSES = {"1.6": Station16, "2.0.1": Station201, "2.1": Station21}


@contextlib.asynccontextmanager
async def connected(url: str, sid: str, version: str, **kwargs: Any) -> AsyncIterator[Any]:
    """A station of the version's class, connected and serving until the block ends."""
    async with websockets.connect(f"{url}/{sid}", subprotocols=[f"ocpp{version}"],
                                  **kwargs) as ws:
        station = CLASSES[version](sid, ws)
        task = asyncio.create_task(station.start())
        try:
            yield station
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


View = Callable[[], Awaitable[dict[str, Any]]]


async def a_new_session_starts_clean(sid: str, first: tuple[str, View],
                                     second: tuple[str, View]) -> None:
    """Station state belongs to one station session (issue 12): connect `sid` with OCPP 1.6
    to the first server, then with 2.0.1 to the second (the same one or another pod), and
    boot. Each server comes as (websocket URL, a read of the station from its API)."""
    (first_url, view), (second_url, second_view) = first, second
    async with connected(first_url, sid, "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="Acme",
                                              charge_point_model="A1"))
        for connector in (1, 2):
            await cp.call(call16.StatusNotification(connector_id=connector,
                                                    error_code="NoError", status="Charging"))
        await cp.call(call16.StartTransaction(connector_id=1, id_tag="T", meter_start=0,
                                              timestamp=NOW))
        await cp.call(call16.MeterValues(connector_id=1, meter_value=[
            {"timestamp": NOW, "sampledValue": [{"value": "10"}]}]))
    old = await view()
    view = second_view
    assert old["version"] == "1.6" and set(old["connectors"]) == {"1", "2"}
    assert old["lastMeterValues"] is not None and len(old["transactions"]) == 1

    async with connected(second_url, sid, "2.0.1") as cp:  # another version, no boot yet
        fresh = await view()
        assert fresh["version"] == "2.0.1" and fresh["connected"]
        assert fresh["connectors"] == {} and fresh["lastMeterValues"] is None
        assert fresh["transactions"] == old["transactions"]  # to be ended, not forgotten
        assert fresh["boot"] == old["boot"]
        await cp.call(call201.StatusNotification(timestamp=NOW, connector_status="Available",
                                                 evse_id=1, connector_id=1))
    async with connected(second_url, sid, "2.0.1") as cp:  # the same version: the same session
        assert set((await view())["connectors"]) == {"1/1"}
        await cp.call(call201.BootNotification(
            charging_station={"vendor_name": "Acme", "model": "A2"}, reason="PowerUp"))
        booted = await view()
        assert booted["connectors"] == {} and booted["boot"]["model"] == "A2"
        assert booted["transactions"] == old["transactions"]
