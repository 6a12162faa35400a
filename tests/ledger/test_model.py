"""The transaction model with literal payloads of every version, each first checked against
its official schema, including the ugly cases real stations send."""

from typing import Any

import pytest

from csms.ledger.model import (
    COMPLETED,
    INCOMPLETE,
    Transaction,
    meter_values_16,
    register_wh,
    start_16,
    stop_16,
    transaction_event,
)
from csms.protocol import schemas


def valid(version: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    schemas.request(version, action).check(payload)  # raises on a payload no station may send
    return payload


def sampled_16(value: str, **attrs: str) -> dict[str, Any]:
    return {"value": value, **attrs}


def start16(meter_start: int = 1000, at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return valid("1.6", "StartTransaction", {"connectorId": 2, "idTag": "TAG-1",
                                              "meterStart": meter_start, "timestamp": at})


def test_a_16_session_with_meter_values_in_wh_and_kwh() -> None:
    tx = start_16("CP-1", 41, start16())
    assert tx.key == "16:41" and tx.status == "active" and tx.energy_wh is None
    tx = meter_values_16("CP-1", valid("1.6", "MeterValues", {
        "connectorId": 2, "transactionId": 41, "meterValue": [{
            "timestamp": "2026-03-01T10:15:00Z",
            "sampledValue": [
                sampled_16("230.1", measurand="Voltage", unit="V"),
                sampled_16("900", measurand=REGISTER, phase="L1", unit="Wh"),  # one phase
                sampled_16("2.5", unit="kWh"),  # the register: the default measurand
            ]}]}), tx)
    assert tx is not None and tx.energy_wh == 1500  # so far: 2.5 kWh - 1000 Wh
    tx = stop_16("CP-1", valid("1.6", "StopTransaction", {
        "transactionId": 41, "meterStop": 8500, "timestamp": "2026-03-01T11:00:00Z",
        "reason": "EVDisconnected", "transactionData": [
            {"timestamp": "2026-03-01T11:00:00Z", "sampledValue": [
                sampled_16("8.5", unit="kWh", context="Transaction.End")]}]}), tx)
    view = tx.view()
    assert view["status"] == COMPLETED and view["energyWh"] == 7500
    assert view["meterStartWh"] == 1000 and view["meterStopWh"] == 8500
    assert view["stopReason"] == "EVDisconnected" and view["connectorId"] == 2
    assert view["idToken"] == "TAG-1" and view["idTokenType"] is None
    assert view["meter"]["readings"] == 2 and view["meter"]["last"]["wh"] == 8500
    assert view["startedAt"] == "2026-03-01T10:00:00Z"
    assert view["stoppedAt"] == "2026-03-01T11:00:00Z"
    assert not view["outOfOrder"] and not view["anomalies"]


REGISTER = "Energy.Active.Import.Register"


def test_a_16_stop_without_reason_is_local_and_a_retried_stop_changes_nothing() -> None:
    tx = start_16("CP-1", 7, start16())
    stop = valid("1.6", "StopTransaction", {"transactionId": 7, "meterStop": 1200,
                                             "timestamp": "2026-03-01T10:30:00Z"})
    tx = stop_16("CP-1", stop, tx)
    assert tx.stop_reason == "Local" and tx.energy_wh == 200
    again = stop_16("CP-1", {**stop, "meterStop": 99999}, tx)
    assert again.duplicates == 1 and again.energy_wh == 200


def test_a_16_stop_for_a_start_never_seen_is_incomplete() -> None:
    tx = stop_16("CP-1", valid("1.6", "StopTransaction", {
        "transactionId": 99, "idTag": "TAG-9", "meterStop": 5000,
        "timestamp": "2026-03-01T10:30:00Z", "reason": "PowerLoss"}))
    assert tx.status == INCOMPLETE and tx.out_of_order and tx.id_token == "TAG-9"
    assert tx.energy_wh is None  # no start to subtract
    assert tx.key == "16:99"


def test_a_16_meter_that_went_backwards_leaves_the_energy_unknown() -> None:
    tx = start_16("CP-1", 8, start16(meter_start=50_000))
    tx = stop_16("CP-1", valid("1.6", "StopTransaction", {
        "transactionId": 8, "meterStop": 120, "timestamp": "2026-03-01T10:30:00Z"}), tx)
    assert tx.energy_wh is None
    assert tx.anomalies == ["meterStop 120 is below meterStart 50000"]


def test_16_values_that_are_not_a_total_register_in_wh_are_ignored() -> None:
    assert register_wh(sampled_16("12"), "1.6") == 12
    assert register_wh(sampled_16("1.25", unit="kWh"), "1.6") == 1250
    assert register_wh(sampled_16("0x1F", format="SignedData"), "1.6") is None
    assert register_wh(sampled_16("NaN"), "1.6") is None
    assert register_wh(sampled_16("lots"), "1.6") is None
    assert register_wh(sampled_16("12", unit="varh"), "1.6") is None
    assert register_wh(sampled_16("12", phase="L2"), "1.6") is None
    tx = meter_values_16("CP-1", valid("1.6", "MeterValues", {
        "connectorId": 1, "meterValue": [{"timestamp": "2026-03-01T10:00:00Z",
                                          "sampledValue": [sampled_16("5")]}]}))
    assert tx is None  # MeterValues outside a transaction are not the ledger's


def event(event_type: str, seq_no: int, at: str, version: str = "2.0.1",
          **extra: Any) -> dict[str, Any]:
    info = {"transactionId": "TX-ABC", **extra.pop("info", {})}
    payload = {"eventType": event_type, "timestamp": at, "triggerReason": "Authorized",
               "seqNo": seq_no, "transactionInfo": info, **extra}
    return valid(version, "TransactionEvent", payload)


def meter(at: str, value: float, unit: str = "Wh", multiplier: int = 0,
          context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    return [{"timestamp": at, "sampledValue": [
        {"value": 3.2, "measurand": "Current.Import", "phase": "L1",
         "unitOfMeasure": {"unit": "A"}},
        {"value": value, "context": context, "measurand": REGISTER,
         "unitOfMeasure": {"unit": unit, "multiplier": multiplier}}]}]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_a_2x_session_with_units_multipliers_and_charging_periods(version: str) -> None:
    tx = transaction_event("CS-1", version, event(
        "Started", 0, "2026-03-01T10:00:00Z", version,
        idToken={"idToken": "04A2B3C4", "type": "ISO14443"}, evse={"id": 1, "connectorId": 1},
        info={"chargingState": "EVConnected"},
        meterValue=meter("2026-03-01T10:00:00Z", 10.0, "kWh", context="Transaction.Begin")))
    tx = transaction_event("CS-1", version, event(
        "Updated", 1, "2026-03-01T10:01:00Z", version, info={"chargingState": "Charging"}), tx)
    tx = transaction_event("CS-1", version, event(
        "Updated", 2, "2026-03-01T10:30:00Z", version, info={"chargingState": "SuspendedEV"},
        meterValue=meter("2026-03-01T10:30:00Z", 10.5, "Wh", multiplier=3)), tx)
    tx = transaction_event("CS-1", version, event(
        "Ended", 3, "2026-03-01T12:00:00+01:00", version,  # 11:00Z, with the station's offset
        info={"stoppedReason": "EVDisconnected", "chargingState": "Idle"},
        meterValue=meter("2026-03-01T11:00:00Z", 12000, context="Transaction.End")), tx)
    view = tx.view()
    assert view["key"] == "CS-1:TX-ABC" and view["version"] == version
    assert view["status"] == COMPLETED and view["energyWh"] == 2000
    assert view["idToken"] == "04A2B3C4" and view["idTokenType"] == "ISO14443"
    assert (view["evseId"], view["connectorId"]) == (1, 1)
    assert view["stopReason"] == "EVDisconnected"
    assert [p["state"] for p in view["chargingPeriods"]] == [
        "EVConnected", "Charging", "SuspendedEV", "Idle"]
    assert view["meter"]["first"]["wh"] == 10000 and view["meter"]["last"]["wh"] == 12000
    assert view["missingSeqNos"] == [] and view["duplicates"] == 0 and not view["outOfOrder"]


def test_a_2x_retry_is_a_duplicate_and_changes_nothing() -> None:
    started = event("Started", 0, "2026-03-01T10:00:00Z",
                    meterValue=meter("2026-03-01T10:00:00Z", 100, context="Transaction.Begin"))
    tx = transaction_event("CS-1", "2.0.1", started)
    ended = event("Ended", 1, "2026-03-01T10:10:00Z",
                  meterValue=meter("2026-03-01T10:10:00Z", 600, context="Transaction.End"))
    tx = transaction_event("CS-1", "2.0.1", ended, tx)
    before = tx.view()
    tx = transaction_event("CS-1", "2.0.1", ended, tx)
    tx = transaction_event("CS-1", "2.0.1", started, tx)
    assert tx.duplicates == 2
    assert {**tx.view(), "duplicates": 0} == {**before, "duplicates": 0}
    assert tx.energy_wh == 500


def test_a_2x_update_before_its_start_and_an_end_without_one() -> None:
    tx = transaction_event("CS-1", "2.0.1", event(
        "Updated", 1, "2026-03-01T10:05:00Z", offline=True,
        meterValue=meter("2026-03-01T10:05:00Z", 300)))
    assert tx.out_of_order and tx.offline and tx.status == "active"
    assert tx.missing_seq_nos == [0]
    tx = transaction_event("CS-1", "2.0.1", event(
        "Started", 0, "2026-03-01T10:00:00Z",
        meterValue=meter("2026-03-01T10:00:00Z", 100, context="Transaction.Begin")), tx)
    assert tx.started_at == "2026-03-01T10:00:00Z" and tx.missing_seq_nos == []
    assert tx.first_reading is not None and tx.first_reading.wh == 100
    assert tx.energy_wh == 200  # running: Begin to the latest reading

    lonely = transaction_event("CS-2", "2.0.1", event(
        "Ended", 5, "2026-03-01T10:00:00Z", info={"stoppedReason": "PowerLoss"}))
    assert lonely.status == INCOMPLETE and lonely.out_of_order
    assert lonely.missing_seq_nos == [0, 1, 2, 3, 4] and lonely.energy_wh is None


def test_a_2x_register_that_goes_back_is_an_anomaly() -> None:
    tx = transaction_event("CS-1", "2.0.1", event(
        "Started", 0, "2026-03-01T10:00:00Z",
        meterValue=meter("2026-03-01T10:00:00Z", 5000, context="Transaction.Begin")))
    tx = transaction_event("CS-1", "2.0.1", event(
        "Ended", 1, "2026-03-01T10:10:00Z",
        meterValue=meter("2026-03-01T10:10:00Z", 40, context="Transaction.End")), tx)
    assert tx.energy_wh is None
    assert tx.anomalies == [
        "the register went back from 5000 Wh to 40 Wh at 2026-03-01T10:10:00Z"]


def test_an_ended_without_stopped_reason_is_local() -> None:
    tx = transaction_event("CS-1", "2.0.1", event("Started", 0, "2026-03-01T10:00:00Z"))
    tx = transaction_event("CS-1", "2.0.1", event("Ended", 1, "2026-03-01T10:00:10Z"), tx)
    assert tx.stop_reason == "Local" and tx.status == COMPLETED


def test_a_record_round_trips_through_json() -> None:
    import json

    tx = transaction_event("CS-1", "2.0.1", event(
        "Updated", 2, "2026-03-01T10:05:00Z", info={"chargingState": "Charging"},
        meterValue=meter("2026-03-01T10:05:00Z", 300)))
    again = Transaction.from_json(json.loads(json.dumps(tx.to_json())))
    assert again == tx and again.view() == tx.view()


def test_late_messages_take_their_place_in_time_whatever_the_offset() -> None:
    tx = transaction_event("CS-1", "2.0.1", event(
        "Started", 0, "2026-03-01T10:00:00Z", info={"chargingState": "EVConnected"}))
    tx = transaction_event("CS-1", "2.0.1", event(  # 10:30Z, sent first
        "Updated", 2, "2026-03-01T11:30:00+01:00", info={"chargingState": "SuspendedEV"},
        meterValue=meter("2026-03-01T11:30:00+01:00", 900)), tx)
    tx = transaction_event("CS-1", "2.0.1", event(  # 10:01Z, queued offline, sent late
        "Updated", 1, "2026-03-01T10:01:00Z", offline=True, info={"chargingState": "Charging"},
        meterValue=meter("2026-03-01T10:01:00Z", 100)), tx)
    assert [p["state"] for p in tx.charging_periods] == ["EVConnected", "Charging",
                                                         "SuspendedEV"]
    assert tx.out_of_order and tx.offline and not tx.anomalies
    assert tx.energy_wh == 800  # from the earliest reading to the latest, not the last sent
    assert tx.updated_at == "2026-03-01T11:30:00+01:00"


def test_a_retried_16_start_has_the_same_fingerprint_and_another_does_not() -> None:
    from csms.ledger.model import start_fingerprint

    first = start16(at="2026-03-01T10:00:00Z")
    assert start_fingerprint("CP-1", first) == start_fingerprint(
        "CP-1", {**first, "timestamp": "2026-03-01T11:00:00.000+01:00"})  # the same instant
    for other in ({**first, "meterStart": 1001}, {**first, "connectorId": 1},
                  {**first, "timestamp": "2026-03-01T10:00:01Z"}):
        assert start_fingerprint("CP-1", other) != start_fingerprint("CP-1", first)
    assert start_fingerprint("CP-2", first) != start_fingerprint("CP-1", first)


@pytest.mark.parametrize("timestamp", ["2026-02-30T10:00:00Z", "2026-0,-01T00:00:00Z"])
def test_a_timestamp_no_calendar_has_is_an_anomaly_not_an_error(timestamp: str) -> None:
    from csms.ledger.model import start_fingerprint

    payload = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": timestamp}
    tx = start_16("CP-1", 3, payload)
    assert tx.anomalies == [f"unreadable timestamp {timestamp!r}"]
    assert timestamp in start_fingerprint("CP-1", payload)
    tx = transaction_event("CS-1", "2.0.1", {**event("Started", 0, "2026-03-01T10:00:00Z"),
                                              "timestamp": timestamp}, None)
    assert tx.started_at == timestamp and tx.anomalies


def test_each_applied_message_is_one_revision_and_a_retry_none() -> None:
    first = event("Started", 0, "2026-03-01T10:00:00Z")
    tx = transaction_event("CS-1", "2.0.1", first)
    assert (tx.revision, tx.idempotency_key) == (1, "CS-1:TX-ABC#1")
    tx = transaction_event("CS-1", "2.0.1", first, tx)
    assert tx.revision == 1 and tx.duplicates == 1
    tx = transaction_event("CS-1", "2.0.1", event("Ended", 1, "2026-03-01T10:10:00Z"), tx)
    assert tx.idempotency_key == "CS-1:TX-ABC#2"
    started = start_16("CP-1", 5, start16())
    assert started.revision == 1
    metered = meter_values_16("CP-1", valid("1.6", "MeterValues", {
        "connectorId": 2, "transactionId": 5, "meterValue": [
            {"timestamp": "2026-03-01T10:05:00Z", "sampledValue": [sampled_16("1100")]},
            {"timestamp": "2026-03-01T10:06:00Z", "sampledValue": [sampled_16("1200")]}]}),
        started)
    assert metered is not None and metered.revision == 2  # one message, one revision


def test_integers_written_as_floats_and_huge_seq_nos_are_read_safely() -> None:
    tx = transaction_event("CS-1", "2.0.1", {
        **event("Updated", 0, "2026-03-01T10:00:00Z"), "seqNo": 2_147_483_647.0,
        "evse": {"id": 1.0, "connectorId": 2.0}})
    assert tx.missing_seq_nos == list(range(100))  # the first hundred, found at once
    assert tx.view()["evseId"] == 1 and tx.view()["connectorId"] == 2
    tx = transaction_event("CS-1", "2.0.1", {**event("Updated", 1, "2026-03-01T10:00:01Z"),
                                              "seqNo": 1.0}, tx)
    assert 1 in tx.seq_nos and tx.missing_seq_nos[:2] == [0, 2]
    stop = stop_16("CP-1", {"transactionId": 7.0, "meterStop": 5,
                            "timestamp": "2026-03-01T10:00:00Z"})
    assert stop.key == "16:7" and stop.transaction_id == "7"


def test_seq_nos_are_kept_as_runs_merged_in_any_order() -> None:
    tx = Transaction("k", "CS-1", "2.0.1", "T")
    for seq_no in (0, 1, 2, 7, 5, 6, 4, 10):
        tx.add_seq_no(seq_no)
    assert tx.seq_runs == [[0, 2], [4, 7], [10, 10]]
    assert tx.missing_seq_nos == [3, 8, 9]
    tx.add_seq_no(3)
    assert tx.seq_runs == [[0, 7], [10, 10]]
    assert [tx.has_seq_no(n) for n in (0, 7, 8, 10, 11)] == [True, True, False, True, False]
    many = Transaction("k", "CS-1", "2.0.1", "T")
    for seq_no in range(5000):  # an in-order session of any length is one run
        many.add_seq_no(seq_no)
    assert many.seq_runs == [[0, 4999]] and len(many.dumps()) < 1000


def test_a_clone_changes_apart_from_its_original() -> None:
    tx = transaction_event("CS-1", "2.0.1", event(
        "Started", 0, "2026-03-01T10:00:00Z", info={"chargingState": "Charging"}))
    twin = tx.clone()
    assert twin == tx and twin is not tx
    twin = transaction_event("CS-1", "2.0.1", event(
        "Updated", 1, "2026-03-01T10:05:00Z", info={"chargingState": "SuspendedEV"}), twin)
    assert tx.seq_runs == [[0, 0]] and len(tx.charging_periods) == 1 and tx.revision == 1
    assert twin.seq_runs == [[0, 1]] and len(twin.charging_periods) == 2
