"""Waiting for something observable, with a deadline: for state that has no event to await
(another process's log, a server becoming ready, a list emptying)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
INTERVAL = 0.02


def wait_until(check: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(INTERVAL)


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 5.0) -> T:
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            await asyncio.sleep(INTERVAL)
