"""The durable command queue in memory: order, expiry, outcomes, and what happens when the
socket closes before or after a queued CALL goes out."""

import time
from typing import Any

import orjson
import pytest

from csms.protocol.router import Router
from csms.state.commands import (
    MAX_QUEUED,
    Command,
    CommandDispatcher,
    MemoryCommandStore,
    QueueFull,
)
from tests.polling import eventually

RESET = {"type": "Immediate"}


async def test_commands_pop_in_order_and_requeue_at_the_head() -> None:
    store = MemoryCommandStore()
    first, second = (Command.new("CP-1", "Reset", RESET, 60) for _ in range(2))
    await store.add(first)
    await store.add(second)
    taken = await store.pop("CP-1")
    assert taken is first
    await store.requeue(first)
    assert [await store.pop("CP-1"), await store.pop("CP-1"), await store.pop("CP-1")] == [
        first, second, None]


async def test_a_full_queue_refuses_more() -> None:
    store = MemoryCommandStore()
    for _ in range(MAX_QUEUED):
        await store.add(Command.new("CP-1", "Reset", RESET, 60))
    with pytest.raises(QueueFull):
        await store.add(Command.new("CP-1", "Reset", RESET, 60))
    await store.add(Command.new("CP-2", "Reset", RESET, 60))  # other stations unaffected


async def test_the_depth_counts_what_waits_and_has_not_expired() -> None:
    store = MemoryCommandStore()
    assert await store.depth() == 0
    await store.add(Command.new("CP-1", "Reset", RESET, 60))
    await store.add(Command.new("CP-2", "Reset", RESET, 60))
    stale = Command.new("CP-2", "Reset", RESET, 60)
    stale.expires_at = 0.0  # its ttl passed while it waited
    await store.add(stale)
    assert await store.depth() == 2
    await store.pop("CP-1")
    assert await store.depth() == 1


def test_a_queued_command_past_its_ttl_reads_as_expired() -> None:
    command = Command.new("CP-1", "Reset", RESET, 60)
    assert command.view()["status"] == "queued"
    command.expires_at = time.time() - 1
    assert command.view()["status"] == "expired"


async def test_queued_commands_are_delivered_in_order_one_at_a_time(make_session: Any) -> None:
    store = MemoryCommandStore()
    session, wire = make_session("2.0.1", Router())
    commands = [Command.new("CP-1", "Reset", RESET, 60),
                Command.new("CP-1", "ClearCache", {}, 60)]
    expired = Command.new("CP-1", "Reset", {"type": "OnIdle"}, 60)
    expired.expires_at = time.time() - 1
    for command in (commands[0], expired, commands[1]):
        await store.add(command)
    dispatcher = CommandDispatcher(store)
    dispatcher.wake(session)
    first = (await wire.wait_for(1))[0]
    assert first[2:] == ["Reset", RESET]
    assert (await store.get(commands[0].id)).status == "sent"  # type: ignore[union-attr]
    session.receive(orjson.dumps([3, first[1], {"status": "Accepted"}]))
    second = (await wire.wait_for(2))[1]
    assert second[2] == "ClearCache"  # the expired Reset in between never went out
    session.receive(orjson.dumps([4, second[1], "InternalError", "busy", {}]))
    await eventually(lambda: commands[1].status == "failed")
    assert commands[0].view()["status"] == "answered"
    assert commands[0].view()["result"] == {"status": "Accepted"}
    assert commands[1].error == {"status": 502, "detail": {
        "code": "InternalError", "description": "busy", "details": {}}}
    assert expired.status == "expired" and len(wire.frames) == 2
    await dispatcher.close()


async def one_queued(make_session: Any) -> tuple[MemoryCommandStore, Any, Any, Command,
                                                 CommandDispatcher]:
    store = MemoryCommandStore()
    session, wire = make_session("1.6", Router())
    command = Command.new("CP-1", "Reset", {"type": "Soft"}, 60)
    await store.add(command)
    return store, session, wire, command, CommandDispatcher(store)


async def test_a_command_is_requeued_if_the_socket_closed_before_it_went_out(
    make_session: Any,
) -> None:
    store, session, wire, command, dispatcher = await one_queued(make_session)
    session.close("gone")
    dispatcher.wake(session)
    await dispatcher.close()
    assert wire.frames == [] and command.status == "queued"
    assert await store.pop("CP-1") is command


async def test_a_command_sent_when_the_socket_closes_is_failed_not_resent(
    make_session: Any,
) -> None:
    store, session, wire, command, dispatcher = await one_queued(make_session)
    dispatcher.wake(session)
    await wire.wait_for(1)
    session.close("connection lost")
    await eventually(lambda: command.status == "failed")
    assert command.error is not None and command.error["status"] == 404
    assert await store.pop("CP-1") is None  # the station may have acted: not sent twice
