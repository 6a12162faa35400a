"""The write-behind loop ends at shutdown even when a cancellation is swallowed, as redis-py
8.1 can do with one that arrives mid-command after an outage."""

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from csms.cluster.flushing import flush_forever, stop_flushing


async def test_the_loop_stops_although_a_flush_swallowed_the_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    wake, entered, flushes = asyncio.Event(), asyncio.Event(), []

    async def flush() -> None:
        flushes.append(len(flushes))
        if len(flushes) == 1:
            entered.set()
            try:
                await asyncio.Event().wait()  # a command in flight
            except asyncio.CancelledError:
                return  # swallowed, as the client does
        raise RedisConnectionError("Connection refused")  # Redis down from then on

    task = asyncio.create_task(flush_forever(wake, flush, lambda: "3 fields"))
    wake.set()
    await entered.wait()
    wake.set()  # more to write: the loop goes round again after the swallowed cancel
    with caplog.at_level(logging.WARNING, "csms.cluster"):
        await asyncio.wait_for(stop_flushing(task, flush, lambda: "3 fields"), 5)
    assert task.cancelled()
    # The loop retried once before the next cancel; the last flush ran after it ended, and
    # its failure was said, not raised.
    assert len(flushes) == 3
    assert "3 fields lost at shutdown, Redis unreachable: Connection refused" in caplog.text
