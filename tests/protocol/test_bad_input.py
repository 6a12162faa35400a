"""One test per row of the README's bad-input table, for each version, with literal frames."""

from typing import Any

import pytest

from csms.protocol.errors import ErrorCode, RpcError
from csms.protocol.router import Context, Router

NOW = "2026-01-01T00:00:00Z"


def station_router() -> Router:
    r = Router()

    @r.on("Heartbeat")
    def heartbeat(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"currentTime": NOW}

    @r.on("StatusNotification")
    def status(payload: dict[str, Any], context: Context) -> None:
        return None

    @r.on("MeterValues")
    def meter(payload: dict[str, Any], context: Context) -> None:
        return None

    @r.on("BootNotification")
    def boot(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        raise ValueError("database password is hunter2")  # must never reach the station

    @r.on("Authorize")
    def authorize(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"idTagInfo": {"status": "Maybe"}, "idTokenInfo": {"status": "Maybe"}}

    @r.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        raise RpcError(ErrorCode.SECURITY_ERROR, "vendor not trusted")

    return r


STATUS_16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
STATUS_2X = {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
LONG = "x" * 60

# (name, frame, expected id, 1.6 code, 2.0.1/2.1 code)
ROWS: list[tuple[str, str, str, str, str]] = [
    ("not JSON", "[2, 'a'", "-1", "FormationViolation", "RpcFrameworkError"),
    ("not an array", '{"a": 1}', "-1", "FormationViolation", "RpcFrameworkError"),
    ("empty array", "[]", "-1", "FormationViolation", "RpcFrameworkError"),
    ("message type not an integer", '["2", "m1", "Heartbeat", {}]', "m1",
     "FormationViolation", "RpcFrameworkError"),
    ("unknown message type", '[7, "m1", "Heartbeat", {}]', "m1",
     "FormationViolation", "MessageTypeNotSupported"),
    ("message id not a string", '[2, 17, "Heartbeat", {}]', "-1",
     "FormationViolation", "RpcFrameworkError"),
    ("message id empty", '[2, "", "Heartbeat", {}]', "-1",
     "FormationViolation", "RpcFrameworkError"),
    ("message id over 36 characters", f'[2, "{"9" * 37}", "Heartbeat", {{}}]', "-1",
     "FormationViolation", "RpcFrameworkError"),
    ("CALL without payload", '[2, "m1", "Heartbeat"]', "m1",
     "FormationViolation", "RpcFrameworkError"),
    ("action not a string", '[2, "m1", 5, {}]', "m1", "FormationViolation", "RpcFrameworkError"),
    ("payload not an object", '[2, "m1", "Heartbeat", []]', "m1",
     "FormationViolation", "FormatViolation"),
    ("unknown action", '[2, "m1", "MakeCoffee", {}]', "m1", "NotImplemented", "NotImplemented"),
    ("known action without a handler", '[2, "m1", "FirmwareStatusNotification", '
     '{"status": "Idle"}]', "m1", "NotSupported", "NotSupported"),
    ("extra field", '[2, "m1", "Heartbeat", {"surprise": 1}]', "m1",
     "FormationViolation", "ProtocolError"),
    ("handler raises", '[2, "m1", "BootNotification", BOOT]', "m1",
     "InternalError", "InternalError"),
    ("handler returns an invalid payload", '[2, "m1", "Authorize", AUTH]', "m1",
     "InternalError", "InternalError"),
    ("handler raises RpcError", '[2, "m1", "DataTransfer", {"vendorId": "acme"}]', "m1",
     "SecurityError", "SecurityError"),
]

BOOT = {"1.6": '{"chargePointVendor": "v", "chargePointModel": "m"}',
        "2.x": '{"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}}'}
AUTH = {"1.6": '{"idTag": "T1"}', "2.x": '{"idToken": {"idToken": "T1", "type": "ISO14443"}}'}


def _frame(text: str, version: str) -> str:
    key = "1.6" if version == "1.6" else "2.x"
    return text.replace("BOOT", BOOT[key]).replace("AUTH", AUTH[key])


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.parametrize(("name", "frame", "message_id", "code16", "code2x"), ROWS,
                         ids=[r[0] for r in ROWS])
async def test_each_bad_frame_gets_one_callerror_with_the_versions_code(
    make_session: Any, version: str, name: str, frame: str, message_id: str, code16: str,
    code2x: str,
) -> None:
    session, wire = make_session(version, station_router())
    session.receive(_frame(frame, version))
    await session.idle()
    frames = await wire.wait_for(1)
    assert len(frames) == 1
    reply = frames[0]
    assert reply[0] == 4
    assert reply[1] == message_id
    assert reply[2] == (code16 if version == "1.6" else code2x)
    assert isinstance(reply[3], str) and len(reply[3]) <= 255
    assert isinstance(reply[4], dict)
    assert "hunter2" not in str(reply), "internals must not leak to the station"


# Payload faults, per version: (name, action, payload, 1.6 code, 2.x code)
STATUS_FAULTS = [
    ("missing required field", {"16": {"connectorId": 1, "status": "Available"},
                                "2x": {"evseId": 1, "connectorId": 1, "timestamp": NOW}},
     "ProtocolError", "OccurrenceConstraintViolation"),
    ("mistyped field", {"16": {**STATUS_16, "connectorId": "one"},
                        "2x": {**STATUS_2X, "evseId": "one"}},
     "TypeConstraintViolation", "TypeConstraintViolation"),
    ("enum value out of range", {"16": {**STATUS_16, "status": "Sleeping"},
                                 "2x": {**STATUS_2X, "connectorStatus": "Sleeping"}},
     "PropertyConstraintViolation", "PropertyConstraintViolation"),
    ("string longer than its type", {"16": {**STATUS_16, "info": LONG},
                                     "2x": {**STATUS_2X, "customData": {"vendorId": "v" * 300}}},
     "TypeConstraintViolation", "TypeConstraintViolation"),
    ("bad date-time", {"16": {**STATUS_16, "timestamp": "yesterday"},
                       "2x": {**STATUS_2X, "timestamp": "2026-01-01 00:00:00"}},
     "TypeConstraintViolation", "TypeConstraintViolation"),
    ("date-time without time zone", {"16": {**STATUS_16, "timestamp": "2026-01-01T00:00:00"},
                                     "2x": {**STATUS_2X, "timestamp": "2026-01-01T00:00:00"}},
     "TypeConstraintViolation", "TypeConstraintViolation"),
    # jsonschema-rs before 0.61 took `*+,-./` for digits; the fuzzer found this one.
    ("date-time with punctuation for digits",
     {"16": {**STATUS_16, "timestamp": "2026-0,-01T00:00:00Z"},
      "2x": {**STATUS_2X, "timestamp": "2026-01-01T00:00:0/Z"}},
     "TypeConstraintViolation", "TypeConstraintViolation"),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.parametrize(("name", "payloads", "code16", "code2x"), STATUS_FAULTS,
                         ids=[r[0] for r in STATUS_FAULTS])
async def test_each_payload_fault_gets_the_versions_schema_code(
    make_session: Any, version: str, name: str, payloads: dict[str, Any], code16: str,
    code2x: str,
) -> None:
    import orjson

    payload = payloads["16" if version == "1.6" else "2x"]
    session, wire = make_session(version, station_router())
    session.receive(orjson.dumps([2, "p1", "StatusNotification", payload]))
    reply = (await wire.wait_for(1))[0]
    assert reply[:3] == [4, "p1", code16 if version == "1.6" else code2x]
    assert reply[4]["path"].startswith("/")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_too_few_items_is_an_occurrence_violation(make_session: Any, version: str) -> None:
    payload = ({"connectorId": 1, "meterValue": []} if version == "1.6"
               else {"evseId": 1, "meterValue": []})
    import orjson

    session, wire = make_session(version, station_router())
    session.receive(orjson.dumps([2, "p2", "MeterValues", payload]))
    reply = (await wire.wait_for(1))[0]
    expected = "OccurenceConstraintViolation" if version == "1.6" else \
        "OccurrenceConstraintViolation"
    assert reply[:3] == [4, "p2", expected]


def test_out_of_range_numbers_are_property_violations() -> None:
    from csms.protocol import schemas

    schemas.request("2.1", "CancelReservation").check({"reservationId": 0})
    with pytest.raises(RpcError) as caught:
        schemas.request("2.1", "CancelReservation").check({"reservationId": -1})
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert caught.value.details["keyword"] == "Minimum"


def test_ocpp16_decimal_limits_follow_multiple_of_exactly() -> None:
    from csms.protocol import schemas

    def profile(limit: float) -> dict[str, Any]:
        return {"connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}}

    schemas.request("1.6", "SetChargingProfile").check(profile(21.4))  # 21.4 is one decimal
    with pytest.raises(RpcError) as caught:
        schemas.request("1.6", "SetChargingProfile").check(profile(4.11))
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


async def test_a_failing_handler_leaves_the_session_serving(make_session: Any) -> None:
    session, wire = make_session("1.6", station_router())
    session.receive(_frame('[2, "a", "BootNotification", BOOT]', "1.6"))
    session.receive('[2, "b", "Heartbeat", {}]')
    frames = await wire.wait_for(2)
    assert frames[0][:3] == [4, "a", "InternalError"]
    assert frames[1] == [3, "b", {"currentTime": NOW}]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_ocpp21_message_types_are_not_supported_before_21(
    make_session: Any, version: str
) -> None:
    session, wire = make_session(version, station_router())
    session.receive('[6, "s1", "Heartbeat", {}]')
    session.receive('[5, "s2", "GenericError", "", {}]')
    frames = await wire.wait_for(2)
    code = "FormationViolation" if version == "1.6" else "MessageTypeNotSupported"
    assert [f[:3] for f in frames] == [[4, "s1", code], [4, "s2", code]]
