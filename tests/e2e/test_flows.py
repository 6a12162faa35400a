"""The central system's behaviour over real websockets, with the `ocpp` library as station."""

import asyncio
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from tests import polling
from tests.e2e.conftest import Server, api
from tests.e2e.stations import connected

NOW = "2026-01-01T00:00:00Z"


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    return await polling.eventually(lambda: asyncio.to_thread(check), timeout)


async def test_an_ocpp16_station_boots_charges_and_gets_its_configuration(server: Server) -> None:
    async with connected(server.ws, "cp16", "1.6") as cp:
        boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme",
                                                     charge_point_model="One",
                                                     firmware_version="2.3"))
        assert (boot.status, boot.interval) == ("Accepted", 77)
        beat = await cp.call(call16.Heartbeat())
        assert beat.current_time.endswith("Z")
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError",
                                                status="Preparing"))
        assert (await cp.call(call16.Authorize(id_tag="TAG-OK"))).id_tag_info["status"] == \
            "Accepted"
        assert (await cp.call(call16.Authorize(id_tag="TAG-NO"))).id_tag_info["status"] == \
            "Invalid"
        first = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TAG-OK",
                                                      meter_start=100, timestamp=NOW))
        second = await cp.call(call16.StartTransaction(connector_id=2, id_tag="TAG-NO",
                                                       meter_start=0, timestamp=NOW))
        assert first.id_tag_info["status"] == "Accepted"
        assert second.id_tag_info["status"] == "Invalid"
        assert first.transaction_id != second.transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=first.transaction_id,
                                         meter_value=[{"timestamp": NOW, "sampledValue": [
                                             {"value": "150", "unit": "Wh"}]}]))
        stop = await cp.call(call16.StopTransaction(meter_stop=200, timestamp=NOW,
                                                    transaction_id=first.transaction_id,
                                                    id_tag="TAG-OK"))
        assert stop.id_tag_info["status"] == "Accepted"
        await eventually(lambda: len(cp.configuration) == 2)
        assert cp.configuration == {"MeterValueSampleInterval": "15",
                                    "StopTransactionOnEVSideDisconnect": "true"}

        view = await eventually(lambda: (b := api(server, "GET", "/api/v1/stations/cp16").json())
                                and len(b["configuration"]) == 2 and b)
        assert view["connected"] is True and view["version"] == "1.6"
        assert view["boot"] == {"vendor": "Acme", "model": "One", "firmwareVersion": "2.3"}
        assert view["connectors"]["1"]["status"] == "Preparing"
        assert view["lastMeterValues"]["transactionId"] == first.transaction_id
        assert view["configuration"] == {"MeterValueSampleInterval": "Accepted",
                                         "StopTransactionOnEVSideDisconnect": "Accepted"}
        assert list(view["transactions"]) == [str(second.transaction_id)]


async def test_an_ocpp201_station_runs_a_transaction_and_gets_set_variables(
    server: Server,
) -> None:
    async with connected(server.ws, "cs201", "2.0.1") as cs:
        boot = await cs.call(call201.BootNotification(
            charging_station={"model": "Two", "vendor_name": "Acme"}, reason="PowerUp"))
        assert boot.status == "Accepted" and boot.interval == 300
        await cs.call(call201.StatusNotification(timestamp=NOW, connector_status="Occupied",
                                                 evse_id=1, connector_id=1))
        auth = await cs.call(call201.Authorize(id_token={"id_token": "ANY", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
        for seq, kind in enumerate(("Started", "Updated", "Ended")):
            result = await cs.call(call201.TransactionEvent(
                event_type=kind, timestamp=NOW, trigger_reason="Authorized", seq_no=seq,
                transaction_info={"transaction_id": "tx-201"},
                id_token={"id_token": "ANY", "type": "ISO14443"},
                meter_value=[{"timestamp": NOW, "sampled_value": [{"value": 10.0 * seq}]}]))
            assert result.id_token_info["status"] == "Accepted"
        await cs.call(call201.NotifyEvent(generated_at=NOW, seq_no=0, event_data=[{
            "event_id": 1, "timestamp": NOW, "trigger": "Alerting", "actual_value": "x",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]))
        data = await cs.call(call201.DataTransfer(vendor_id="com.acme"))
        assert data.status == "UnknownVendorId"
        await eventually(lambda: len(cs.variables) == 2)
        assert cs.variables == {"OCPPCommCtrlr.HeartbeatInterval": "90",
                                "AuthCtrlr.Enabled": "true"}
        view = await eventually(
            lambda: (b := api(server, "GET", "/api/v1/stations/cs201").json())
            and len(b["configuration"]) == 2 and b)
        assert view["connectors"] == {"1/1": {"status": "Occupied", "timestamp": NOW}}
        assert view["transactions"] == {}
        assert view["configuration"]["AuthCtrlr.Enabled"] == "Accepted"


async def test_an_ocpp21_station_is_served_on_ocpp21(server: Server) -> None:
    async with connected(server.ws, "cs21", "2.1") as cs:
        boot = await cs.call(call21.BootNotification(
            charging_station={"model": "Three", "vendor_name": "Acme"}, reason="PowerUp"))
        assert boot.status == "Accepted"
        assert (await cs.call(call21.Heartbeat())).current_time.endswith("Z")
        result = await cs.call(call21.TransactionEvent(
            event_type="Started", timestamp=NOW, trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": "tx-21"}))
        assert result is not None
        view = api(server, "GET", "/api/v1/stations/cs21").json()
        assert view["version"] == "2.1"
        assert "tx-21" in view["transactions"]
