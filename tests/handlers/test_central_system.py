"""The central system's handlers in memory, with literal frames."""

import asyncio
from typing import Any

import orjson
import pytest

from csms.handlers import central_system
from csms.services import Services
from csms.state.registry import StationEntry

BOOT16 = {"chargePointVendor": "v", "chargePointModel": "m"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}}


def session_for(make_session: Any, version: str, entry: StationEntry) -> Any:
    services = Services()
    session, wire = make_session(version, *central_system(services), station=entry)
    return session, wire, services


async def test_ocpp16_configuration_outcomes_are_recorded_per_key(make_session: Any) -> None:
    entry = StationEntry("CP-1", configuration={"A": "1", "B": "2", "C": "3"})
    session, wire, services = session_for(make_session, "1.6", entry)
    session.receive(orjson.dumps([2, "b", "BootNotification", BOOT16]))
    answers = iter([[3, None, {"status": "Accepted"}], [3, None, {"status": "RebootRequired"}],
                    [4, None, "NotSupported", "read-only", {}]])
    seen = 1
    for answer in answers:
        frames = await wire.wait_for(seen + 1)
        call = frames[-1]
        assert call[2] == "ChangeConfiguration"
        answer[1] = call[1]
        session.receive(orjson.dumps(answer))
        seen += 1
    await session.idle()
    state = await services.stations.get("CP-1")
    assert state is not None
    assert state.configuration == {"A": "Accepted", "B": "RebootRequired",
                                   "C": "Failed: NotSupported: read-only"}


async def test_ocpp201_configuration_goes_out_as_one_set_variables(make_session: Any) -> None:
    entry = StationEntry("CP-1", configuration={"OCPPCommCtrlr.HeartbeatInterval": "60",
                                                "NoDot": "1", "TxCtrlr.EVConnectionTimeOut": "30"})
    session, wire, services = session_for(make_session, "2.0.1", entry)
    session.receive(orjson.dumps([2, "b", "BootNotification", BOOT201]))
    call = (await wire.wait_for(2))[1]
    assert call[2] == "SetVariables"
    data = call[3]["setVariableData"]
    assert [(d["component"]["name"], d["variable"]["name"], d["attributeValue"])
            for d in data] == [("OCPPCommCtrlr", "HeartbeatInterval", "60"),
                               ("TxCtrlr", "EVConnectionTimeOut", "30")]
    session.receive(orjson.dumps([3, call[1], {"setVariableResult": [
        {"attributeStatus": "Accepted", "component": data[0]["component"],
         "variable": data[0]["variable"]},
        {"attributeStatus": "Rejected", "component": data[1]["component"],
         "variable": data[1]["variable"]}]}]))
    await session.idle()
    state = await services.stations.get("CP-1")
    assert state is not None and state.configuration == {
        "NoDot": "Failed: configuration key 'NoDot' is not Component.Variable",
        "OCPPCommCtrlr.HeartbeatInterval": "Accepted", "TxCtrlr.EVConnectionTimeOut": "Rejected"}


async def test_transaction_ids_are_unique_and_tokens_follow_the_registry(
    make_session: Any,
) -> None:
    entry = StationEntry("CP-1", id_tokens=frozenset({"GOOD"}))
    session, wire, _ = session_for(make_session, "1.6", entry)
    for n, tag in enumerate(["GOOD", "BAD", "GOOD"]):
        session.receive(orjson.dumps([2, f"s{n}", "StartTransaction", {
            "connectorId": 1, "idTag": tag, "meterStart": 0,
            "timestamp": f"2026-01-01T00:00:0{n}Z"}]))
    # The station did not get the answer to the last one and sends it again.
    session.receive(orjson.dumps([2, "s3", "StartTransaction", {
        "connectorId": 1, "idTag": "GOOD", "meterStart": 0,
        "timestamp": "2026-01-01T00:00:02Z"}]))
    frames = await wire.wait_for(4)
    ids = [f[2]["transactionId"] for f in frames]
    assert len(set(ids[:3])) == 3 and all(0 < i < 2**31 for i in ids)
    assert ids[3] == ids[2]  # the retry gets the id it was given, not a second transaction
    assert [f[2]["idTagInfo"]["status"] for f in frames] == [
        "Accepted", "Invalid", "Accepted", "Accepted"]


async def test_a_stop_without_id_tag_has_no_id_tag_info(make_session: Any) -> None:
    session, wire, _ = session_for(make_session, "1.6", StationEntry("CP-1", accept_all=True))
    session.receive(orjson.dumps([2, "s", "StopTransaction", {
        "transactionId": 5, "meterStop": 1, "timestamp": "2026-01-01T00:00:00Z"}]))
    assert (await wire.wait_for(1))[0] == [3, "s", {}]


async def test_a_rejected_boot_would_push_nothing(make_session: Any) -> None:
    # With no configuration there is nothing to push: the boot answer is the only frame.
    session, wire, services = session_for(make_session, "2.1", StationEntry("CP-1"))
    session.receive(orjson.dumps([2, "b", "BootNotification", BOOT201]))
    await session.idle()
    await asyncio.sleep(0)
    assert len(wire.frames) == 1 and wire.frames[0][2]["status"] == "Accepted"
    state = await services.stations.get("CP-1")
    assert state is not None
    assert state.view()["boot"] == {"vendor": "v", "model": "m", "reason": "PowerUp"}


async def test_boots_beyond_the_rate_are_answered_pending_with_a_jittered_interval(
    make_session: Any,
) -> None:
    from csms.observability.counters import count
    from csms.state.admission import TokenBucket

    before = count("csms_boots_pending")
    services = Services(boots=TokenBucket(rate=0.001, burst=1), pending_interval=60)
    entry = StationEntry("CP-1", configuration={"A": "1"})
    session, wire = make_session("1.6", *central_system(services), station=entry)
    session.receive(orjson.dumps([2, "b1", "BootNotification", BOOT16]))
    accepted = (await wire.wait_for(2))[0]  # then the configuration push
    assert accepted[2]["status"] == "Accepted" and wire.frames[1][2] == "ChangeConfiguration"
    session.receive(orjson.dumps([3, wire.frames[1][1], {"status": "Accepted"}]))
    intervals = []
    for n in range(5):
        session.receive(orjson.dumps([2, f"p{n}", "BootNotification", BOOT16]))
        reply = (await wire.wait_for(3 + n))[-1]
        assert reply[:2] == [3, f"p{n}"] and reply[2]["status"] == "Pending"
        intervals.append(reply[2]["interval"])
    await session.idle()
    assert all(30 <= i <= 90 for i in intervals)
    assert len(wire.frames) == 7  # no configuration pushed after a Pending boot
    assert count("csms_boots_pending") == before + 5


async def test_billing_events_come_once_per_change_with_their_idempotency_key(
    make_session: Any,
) -> None:
    session, wire, services = session_for(make_session, "1.6",
                                          StationEntry("CP-1", accept_all=True))
    events = services.events.subscribe()
    first = asyncio.ensure_future(anext(events))  # subscribed before the first message
    await asyncio.sleep(0)
    start = {"connectorId": 1, "idTag": "T", "meterStart": 100,
             "timestamp": "2026-01-01T00:00:00Z"}
    session.receive(orjson.dumps([2, "s", "StartTransaction", start]))
    tx_id = (await wire.wait_for(1))[0][2]["transactionId"]
    session.receive(orjson.dumps([2, "r", "StartTransaction", start]))  # a retry
    session.receive(orjson.dumps([2, "m", "MeterValues", {
        "connectorId": 1, "transactionId": tx_id, "meterValue": [
            {"timestamp": "2026-01-01T00:10:00Z", "sampledValue": [{"value": "400"}]}]}]))
    session.receive(orjson.dumps([2, "e", "StopTransaction", {
        "transactionId": tx_id, "meterStop": 900, "timestamp": "2026-01-01T00:20:00Z"}]))
    await wire.wait_for(4)
    seen = [await first]
    async with asyncio.timeout(5):
        while len(seen) < 3:
            seen.append(await anext(events))
    with pytest.raises(TimeoutError):  # and nothing more: the retried start published none
        await asyncio.wait_for(anext(events), 0.1)
    billing = [(e.action, e.payload["idempotencyKey"], e.payload["transaction"]["energyWh"])
               for e in seen]
    key = f"16:{tx_id}"
    assert billing == [("TransactionStarted", f"{key}#1", None),
                       ("TransactionUpdated", f"{key}#2", 300),
                       ("TransactionEnded", f"{key}#3", 800)]
