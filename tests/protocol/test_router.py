"""Handler registration and lookup: dataclass payloads, versions, precedence, after-hooks."""

from typing import Any

import pytest
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from csms.protocol.router import Context, Router, tables


async def test_a_handler_annotated_with_a_dataclass_gets_and_returns_dataclasses(
    make_session: Any,
) -> None:
    router = Router()
    got: list[call.Authorize] = []

    @router.on(Action.authorize)
    def authorize(payload: call.Authorize, context: Context) -> call_result.Authorize:
        got.append(payload)
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    session, wire = make_session("1.6", router)
    session.receive('[2, "a", "Authorize", {"idTag": "T1"}]')
    assert (await wire.wait_for(1))[0] == [3, "a", {"idTagInfo": {"status": "Accepted"}}]
    assert got == [call.Authorize(id_tag="T1")]


async def test_a_version_specific_handler_beats_a_generic_one(make_session: Any) -> None:
    router = Router()

    @router.on("Heartbeat")
    def any_version(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"currentTime": "2000-01-01T00:00:00Z"}

    @router.on("Heartbeat", version="ocpp2.0.1")
    def v201(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"currentTime": "2001-01-01T00:00:00Z"}

    for version, year in (("1.6", "2000"), ("2.0.1", "2001"), ("2.1", "2000")):
        session, wire = make_session(version, router)
        session.receive('[2, "h", "Heartbeat", {}]')
        assert (await wire.wait_for(1))[0][2]["currentTime"].startswith(year)


def test_the_first_router_with_a_handler_wins() -> None:
    first, second = Router(), Router()

    def a(payload: dict[str, Any], context: Context) -> None:
        return None

    def b(payload: dict[str, Any], context: Context) -> None:
        return None

    first.on("Heartbeat")(a)
    second.on("Heartbeat")(b)
    second.on("StatusNotification")(b)
    table = tables([first, second])["1.6"]
    assert table.routes["Heartbeat"].handler is a
    assert table.routes["StatusNotification"].handler is b


def test_registering_an_action_twice_in_one_router_is_an_error() -> None:
    router = Router()
    router.on("Heartbeat")(lambda p, c: None)
    with pytest.raises(ValueError, match="already has a handler"):
        router.on("Heartbeat")(lambda p, c: None)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OCPP version"):
        Router().on("Heartbeat", version="1.5")


async def test_after_hooks_run_after_the_reply_with_payload_and_response(
    make_session: Any,
) -> None:
    router = Router()
    order: list[str] = []

    @router.on("Heartbeat")
    def heartbeat(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        order.append("handler")
        return {"currentTime": "2026-01-01T00:00:00Z"}

    @router.after("Heartbeat")
    async def after(payload: dict[str, Any], response: dict[str, Any], context: Context) -> None:
        order.append(f"after {response['currentTime'][:4]} {len(wire.frames)}")

    session, wire = make_session("2.0.1", router)
    session.receive('[2, "h", "Heartbeat", {}]')
    await session.idle()
    assert order == ["handler", "after 2026 1"]


async def test_sync_and_async_handlers_both_answer_inline(make_session: Any) -> None:
    router = Router()

    @router.on("Heartbeat")
    async def heartbeat(payload: dict[str, Any], context: Context) -> dict[str, Any]:
        return {"currentTime": "2026-01-01T00:00:00Z"}

    session, wire = make_session("1.6", router)
    session.receive('[2, "h", "Heartbeat", {}]')
    # No task was needed: the reply was written before receive() returned.
    assert len(wire.frames) == 1
