"""Inputs found by attacking the core: deep nesting, and failures that must not escape.

Each CALL gets exactly one answer and the session keeps serving, whatever arrives.
"""

import asyncio
import json
from typing import Any

import orjson
import pytest

from csms.protocol import frames, schemas
from csms.protocol.errors import ErrorCode, ResponseInvalid, RpcError
from csms.protocol.router import Context, Router, tables
from csms.protocol.session import Session
from tests.conftest import SessionFactory

VERSIONS = ["1.6", "2.0.1", "2.1"]
FORMAT = {"1.6": "FormationViolation", "2.0.1": "FormatViolation", "2.1": "FormatViolation"}


def nested(depth: int, leaf: str = '"x"') -> str:
    return "[" * depth + leaf + "]" * depth


def boot_with(vendor: str, version: str) -> str:
    if version == "1.6":
        return f'{{"chargePointVendor": {vendor}, "chargePointModel": "m"}}'
    return f'{{"reason": "PowerUp", "chargingStation": {{"model": "m", "vendorName": {vendor}}}}}'


def heartbeat_router() -> Router:
    r = Router()

    @r.on("Heartbeat")
    def heartbeat(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"currentTime": "2026-01-01T00:00:00Z"}

    return r


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_reported_deep_frame_gets_a_callerror_and_the_session_serves_on(
    make_session: SessionFactory, version: str
) -> None:
    # The defect: ~530 bytes, 255 levels, failing its schema, crashed the connection (1006).
    frame = f'[2, "deep", "BootNotification", {boot_with(nested(255), version)}]'
    assert len(frame) < 700
    session, wire = make_session(version, heartbeat_router())
    session.receive(frame)
    session.receive('[2, "after", "Heartbeat", {}]')
    await session.idle()
    replies = await wire.wait_for(2)
    assert replies[0][:3] == [4, "deep", FORMAT[version]]
    assert "deeper than 32" in replies[0][3]
    assert replies[1][:2] == [3, "after"]
    assert len(replies) == 2


@pytest.mark.parametrize("depth", [33, 100, 254, 255, 256, 300, 1000])
async def test_every_depth_past_the_limit_is_refused_before_validation(
    make_session: SessionFactory, depth: int
) -> None:
    # Valid against its schema too: 2.0.1 DataTransfer data is any JSON.
    session, wire = make_session("2.0.1", heartbeat_router())
    session.receive(f'[2, "d", "DataTransfer", {{"vendorId": "v", "data": {nested(depth)}}}]')
    await session.idle()
    assert (await wire.wait_for(1)) == [
        [4, "d", "FormatViolation", "frame is nested deeper than 32 levels", {}]]


async def test_a_frame_at_the_limit_is_served(make_session: SessionFactory) -> None:
    # frame (1) + payload (2) + data's arrays (30) = 32 levels: allowed; one more is not.
    session, wire = make_session("2.0.1", heartbeat_router())
    session.receive(f'[2, "ok", "DataTransfer", {{"vendorId": "v", "data": {nested(30)}}}]')
    session.receive(f'[2, "no", "DataTransfer", {{"vendorId": "v", "data": {nested(31)}}}]')
    replies = await wire.wait_for(2)
    assert replies[0][:3] == [4, "ok", "NotSupported"]  # validated and routed, no handler here
    assert replies[1][:3] == [4, "no", "FormatViolation"]


async def test_the_depth_limit_is_a_setting(make_session: SessionFactory) -> None:
    session, wire = make_session("2.0.1", heartbeat_router(), max_depth=64)
    session.receive(f'[2, "ok", "DataTransfer", {{"vendorId": "v", "data": {nested(62)}}}]')
    session.receive(f'[2, "no", "DataTransfer", {{"vendorId": "v", "data": {nested(63)}}}]')
    replies = await wire.wait_for(2)
    assert replies[0][:3] == [4, "ok", "NotSupported"]
    assert replies[1][:4] == [4, "no", "FormatViolation", "frame is nested deeper than 64 levels"]


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = '[2, "s", "DataTransfer", {"vendorId": "v", "data": "' + "[{" * 500 + '"}]'
    assert not frames.too_deep(text, orjson.loads(text), 32)
    assert frames.too_deep(nested(33), orjson.loads(nested(33)), 32)
    assert not frames.too_deep(nested(32).encode(), orjson.loads(nested(32)), 32)


def test_the_official_schemas_fit_well_inside_the_default_limit() -> None:
    # The deepest official payload (2.x ReportChargingProfiles) nests 13 levels.
    profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Absolute", "chargingSchedule": [{
                   "id": 1, "chargingRateUnit": "A",
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}
    payload = {"requestId": 1, "chargingLimitSource": "CSO", "evseId": 1,
               "chargingProfile": [profile]}
    schemas.request("2.0.1", "ReportChargingProfiles").check(payload)
    text = orjson.dumps([2, "r", "ReportChargingProfiles", payload])
    assert not frames.too_deep(text, orjson.loads(text), frames.DEFAULT_MAX_DEPTH)


@pytest.mark.parametrize("depth", [256, 400])
def test_the_validator_turns_its_own_depth_failure_into_a_format_violation(depth: int) -> None:
    payload = orjson.loads(boot_with(nested(depth), "1.6"))
    validator = schemas.request("1.6", "BootNotification")
    assert validator.accepts(payload) is False
    with pytest.raises(RpcError) as caught:
        validator.check(payload)
    assert caught.value.code is ErrorCode.FORMAT_VIOLATION


async def test_a_deep_reply_to_our_call_fails_that_call_and_21_says_why(
    make_session: SessionFactory,
) -> None:
    session, wire = make_session("2.1")
    call = asyncio.ensure_future(session.call("Reset", {"type": "Immediate"}, timeout=2))
    request = (await wire.wait_for(1))[0]
    session.receive(f'[3, "{request[1]}", {{"status": {nested(40)}}}]')
    with pytest.raises(ResponseInvalid):
        await call
    reply = (await wire.wait_for(2))[1]
    assert reply[:3] == [5, request[1], "FormatViolation"]


async def test_deep_frames_that_are_never_answered_are_dropped(
    make_session: SessionFactory,
) -> None:
    session, wire = make_session("2.1", heartbeat_router())
    session.receive(f'[6, "s", "Heartbeat", {{"x": {nested(40)}}}]')  # SEND
    session.receive(f'[3, "nobody", {{"x": {nested(40)}}}]')  # a reply to nothing
    session.receive(f'[4, "nobody", "GenericError", "", {{"x": {nested(40)}}}]')
    session.receive(f'[5, "nobody", "GenericError", "", {{"x": {nested(40)}}}]')
    session.receive('[2, "h", "Heartbeat", {}]')
    await session.idle()
    assert [f[:2] for f in await wire.wait_for(1)] == [[3, "h"]]


async def test_a_deep_frame_of_an_unknown_type_is_not_supported(
    make_session: SessionFactory,
) -> None:
    session, wire = make_session("2.0.1")
    session.receive(f'[9, "u", {nested(40)}]')
    assert (await wire.wait_for(1))[0][:3] == [4, "u", "MessageTypeNotSupported"]


async def test_a_response_that_cannot_be_serialized_is_an_internal_error(
    make_session: SessionFactory,
) -> None:
    r = Router()

    @r.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"status": "Accepted", "data": {"too": float("nan"), "big": 2**70}}

    session, wire = make_session("1.6", r)
    session.receive('[2, "x", "DataTransfer", {"vendorId": "v"}]')
    session.receive('[2, "y", "DataTransfer", {"vendorId": "v"}]')
    replies = await wire.wait_for(2)
    assert [f[:3] for f in replies] == [[4, "x", "InternalError"], [4, "y", "InternalError"]]


async def test_error_details_that_are_not_json_are_dropped_not_the_answer(
    make_session: SessionFactory,
) -> None:
    r = Router()

    @r.on("DataTransfer")
    def data_transfer(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        raise RpcError(ErrorCode.SECURITY_ERROR, "no", {"when": object()})

    session, wire = make_session("2.0.1", r)
    session.receive('[2, "x", "DataTransfer", {"vendorId": "v"}]')
    assert (await wire.wait_for(1)) == [[4, "x", "SecurityError", "no", {}]]


class BrokenHooks:
    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    def accepted(self, station_id: str, version: str, action: str, payload: Any) -> None:
        raise RuntimeError("event bus down")

    def unexpected(self, version: str, kind: str) -> None:
        raise RuntimeError("metrics backend down")


async def test_failing_observers_cost_no_answer_and_no_connection(
    make_session: SessionFactory,
) -> None:
    session, wire = make_session("1.6", heartbeat_router(), hooks=BrokenHooks())
    for frame in ['[2, "a", "Heartbeat", {}]', "not json", '[2, "b", "Nope", {}]',
                  f'[2, "c", "Heartbeat", {{"x": {nested(40)}}}]', '[3, "z", {}]',
                  '[2, "d", "Heartbeat", {}]']:
        session.receive(frame)  # must not raise
    await session.idle()
    replies = await wire.wait_for(5)
    assert [f[:2] for f in replies] == [[3, "a"], [4, "-1"], [4, "b"], [4, "c"], [3, "d"]]


async def test_nothing_a_station_sends_raises_out_of_receive() -> None:
    # Every JSON shape in every slot of every frame type: the session answers or drops it.
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    values: list[Any] = [None, True, 0, -1, 2**64, 1.5, "", "x" * 40, "Heartbeat", [], {},
                         [[[]]], {"a": {"b": {}}}]
    for version in VERSIONS:
        session = Session("CP", version, tables([heartbeat_router()])[version], send)
        for kind in range(0, 8):
            for second in values:
                for third in values:
                    for rest in ([], [{}], [values[-1], {}], ["", {}]):
                        session.receive(json.dumps([kind, second, third, *rest]))
        await session.idle()
        assert sent
