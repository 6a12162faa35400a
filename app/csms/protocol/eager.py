"""Run a coroutine inline until it first waits, and only then hand it to a task.

Most handlers finish without ever waiting, so a task per message (and its scheduling) would
be pure overhead on the hot path. A handler that does wait (for the station, for Redis) is
moved into a task at that point, so the caller, usually the receive loop, is never blocked
by it: this is what keeps frames flowing while a handler awaits the station.
(Python 3.12's eager task factory does the same; we support 3.11.)
"""

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any


@types.coroutine
def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    # Forward what the coroutine yields to the task and what the task sends back to it,
    # exactly as `await` would have done had the task started the coroutine.
    while True:
        try:
            value = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _continue(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _finish(coro, yielded)


def run_eagerly(coro: Coroutine[Any, Any, None]) -> "asyncio.Task[Any] | None":
    """Start `coro` now; if it suspends, continue it in a task and return that task
    (the caller must keep a reference to it until it is done)."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_continue(coro, yielded))
