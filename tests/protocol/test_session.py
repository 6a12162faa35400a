"""Outbound calls, replies, the one-call-at-a-time rule and the OCPP 2.1 message types."""

import asyncio
from typing import Any

import pytest

from csms.protocol.errors import (
    CallErrorReceived,
    CallTimeout,
    NotConnected,
    PayloadInvalid,
    ResponseInvalid,
)
from csms.protocol.router import Context, Router
from csms.protocol.session import NoHooks


class CountingHooks(NoHooks):
    def __init__(self) -> None:
        self.unexpected_kinds: list[str] = []
        self.outcomes: list[tuple[str, str]] = []
        self.accepted_actions: list[str] = []

    def unexpected(self, version: str, kind: str) -> None:
        self.unexpected_kinds.append(kind)

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        self.outcomes.append((action, outcome))

    def accepted(self, station_id: str, version: str, action: str, payload: Any) -> None:
        self.accepted_actions.append(action)


async def test_a_call_returns_the_stations_result(make_session: Any) -> None:
    session, wire = make_session("1.6")
    task = asyncio.create_task(session.call("Reset", {"type": "Soft"}))
    sent = (await wire.wait_for(1))[0]
    assert sent[0] == 2 and sent[2:] == ["Reset", {"type": "Soft"}]
    session.receive(f'[3, "{sent[1]}", {{"status": "Accepted"}}]')
    assert await task == {"status": "Accepted"}


async def test_calls_go_one_at_a_time_in_order_with_unique_ids(make_session: Any) -> None:
    session, wire = make_session("1.6")
    tasks = [asyncio.create_task(session.call("Reset", {"type": t}))
             for t in ("Soft", "Hard", "Soft")]
    first = (await wire.wait_for(1))[0]
    await asyncio.sleep(0)
    assert len(wire.frames) == 1, "a second CALL went out before the first was answered"
    ids = [first[1]]
    for expected in ("Soft", "Hard", "Soft"):
        frame = wire.frames[len(ids) - 1]
        assert frame[3] == {"type": expected}
        session.receive(f'[3, "{frame[1]}", {{"status": "Accepted"}}]')
        if len(ids) < 3:
            ids.append((await wire.wait_for(len(ids) + 1))[-1][1])
    await asyncio.gather(*tasks)
    assert len(set(ids)) == 3


async def test_a_callerror_raises_with_the_stations_code(make_session: Any) -> None:
    session, wire = make_session("2.0.1")
    task = asyncio.create_task(session.call("Reset", {"type": "Immediate"}))
    sent = (await wire.wait_for(1))[0]
    session.receive(f'[4, "{sent[1]}", "NotSupported", "no reset here", {{"why": "x"}}]')
    with pytest.raises(CallErrorReceived) as caught:
        await task
    assert (caught.value.code, caught.value.description, caught.value.details) == (
        "NotSupported", "no reset here", {"why": "x"})


async def test_a_timeout_frees_the_slot_and_a_late_reply_is_counted(make_session: Any) -> None:
    hooks = CountingHooks()
    session, wire = make_session("1.6", hooks=hooks)
    with pytest.raises(CallTimeout):
        await session.call("Reset", {"type": "Soft"}, timeout=0.05)
    late_id = wire.frames[0][1]
    task = asyncio.create_task(session.call("ClearCache", {}))
    sent = (await wire.wait_for(2))[1]
    session.receive(f'[3, "{late_id}", {{"status": "Accepted"}}]')
    session.receive(f'[3, "{sent[1]}", {{"status": "Accepted"}}]')
    assert await task == {"status": "Accepted"}
    assert hooks.unexpected_kinds == ["callresult"]
    assert hooks.outcomes == [("Reset", "timeout"), ("ClearCache", "ok")]


async def test_a_reply_that_fails_the_schema_raises_response_invalid(make_session: Any) -> None:
    session, wire = make_session("2.0.1")
    task = asyncio.create_task(session.call("Reset", {"type": "Immediate"}))
    sent = (await wire.wait_for(1))[0]
    session.receive(f'[3, "{sent[1]}", {{"status": "Perhaps"}}]')
    with pytest.raises(ResponseInvalid):
        await task
    assert len(wire.frames) == 1, "OCPP 2.0.1 has no CALLRESULTERROR to send"


async def test_on_21_an_invalid_reply_is_answered_with_callresulterror(make_session: Any) -> None:
    session, wire = make_session("2.1")
    task = asyncio.create_task(session.call("Reset", {"type": "Immediate"}))
    sent = (await wire.wait_for(1))[0]
    session.receive(f'[3, "{sent[1]}", {{"status": "Perhaps"}}]')
    with pytest.raises(ResponseInvalid):
        await task
    answer = (await wire.wait_for(2))[1]
    assert answer[:3] == [5, sent[1], "PropertyConstraintViolation"]


async def test_a_payload_failing_the_schema_is_never_sent(make_session: Any) -> None:
    session, wire = make_session("1.6")
    with pytest.raises(PayloadInvalid) as caught:
        await session.call("Reset", {"type": "Gentle"})
    assert caught.value.error.code.value == "PropertyConstraintViolation"
    with pytest.raises(PayloadInvalid):
        await session.call("TransactionEvent", {})  # not a 1.6 action
    assert wire.frames == []


async def test_closing_fails_pending_and_queued_calls(make_session: Any) -> None:
    session, wire = make_session("1.6")
    first = asyncio.create_task(session.call("ClearCache", {}))
    second = asyncio.create_task(session.call("ClearCache", {}))
    await wire.wait_for(1)
    session.close("superseded by a newer connection")
    for task in (first, second):
        with pytest.raises(NotConnected, match="superseded"):
            await task
    assert len(wire.frames) == 1


async def test_a_handler_can_call_the_station_without_deadlock(make_session: Any) -> None:
    router = Router()

    @router.on("BootNotification")
    async def boot(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        config = await context.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        interval = int(config["configurationKey"][0]["value"])
        return {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": interval}

    session, wire = make_session("1.6", router)
    session.receive('[2, "b1", "BootNotification", '
                    '{"chargePointVendor": "v", "chargePointModel": "m"}]')
    call = (await wire.wait_for(1))[0]
    assert call[2] == "GetConfiguration"
    # The session keeps reading while the handler waits: the reply reaches it.
    session.receive(f'[3, "{call[1]}", {{"configurationKey": '
                    '[{"key": "HeartbeatInterval", "readonly": false, "value": "42"}]}]')
    reply = (await wire.wait_for(2))[1]
    assert reply[:2] == [3, "b1"] and reply[2]["interval"] == 42


async def test_send_on_21_is_dispatched_and_never_answered(make_session: Any) -> None:
    router = Router()
    seen: list[dict[str, Any]] = []

    @router.on("NotifyPeriodicEventStream")
    def stream(payload: dict[str, Any], context: Context) -> None:
        seen.append(payload)

    hooks = CountingHooks()
    session, wire = make_session("2.1", router, hooks=hooks)
    data = {"id": 1, "pending": 0, "basetime": "2026-01-01T00:00:00Z",
            "data": [{"t": 0.5, "v": "230"}]}
    import orjson

    session.receive(orjson.dumps([6, "s1", "NotifyPeriodicEventStream", data]))
    session.receive('[6, "s2", "NotifyPeriodicEventStream", {"id": "wrong"}]')
    session.receive('[6, 5]')
    await session.idle()
    assert seen == [data]
    assert wire.frames == []
    assert hooks.accepted_actions == ["NotifyPeriodicEventStream"]
    assert hooks.unexpected_kinds == ["malformed_send"]


async def test_a_callresulterror_from_the_station_is_counted(make_session: Any) -> None:
    hooks = CountingHooks()
    session, wire = make_session("2.1", hooks=hooks)
    session.receive('[5, "x1", "FormatViolation", "your result was bad", {}]')
    assert wire.frames == []
    assert hooks.unexpected_kinds == ["callresulterror"]


async def test_the_context_sends_21_send_frames(make_session: Any) -> None:
    session, wire = make_session("2.1")
    await session.context.send("NotifyPeriodicEventStream", {
        "id": 1, "pending": 0, "basetime": "2026-01-01T00:00:00Z", "data": [{"t": 0, "v": "1"}]})
    frame = (await wire.wait_for(1))[0]
    assert frame[0] == 6 and frame[2] == "NotifyPeriodicEventStream"


class LabelHooks(NoHooks):
    def __init__(self) -> None:
        self.labels: list[tuple[str, str]] = []

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        self.labels.append((action, outcome))


async def test_invented_action_names_share_one_metric_label(make_session: Any) -> None:
    hooks = LabelHooks()
    session, wire = make_session("2.0.1", hooks=hooks)
    for n in range(3):
        session.receive(f'[2, "u{n}", "Invented{n}", {{}}]')
    session.receive('[2, "k", "Reset", {"type": "Immediate"}]')  # known, not handled here
    await wire.wait_for(4)
    assert hooks.labels == [("unknown", "NotImplemented")] * 3 + [("Reset", "NotSupported")]
