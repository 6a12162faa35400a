"""Graceful drain on SIGTERM.

`/readyz` turns false and new upgrades get 503 at once; then the station sockets are closed
with 1012 (service restart) in batches spread over `CSMS_DRAIN_SPREAD` seconds with jitter,
so the stations reconnect to the other pods gradually, not in one stampede. Each station's
in-flight calls finish first (bounded), calls other pods asked of us finish, and ownership is
released as each socket closes. The whole drain ends within `CSMS_GRACEFUL_TIMEOUT`; what is
left then is closed by uvicorn's own shutdown.
"""

import asyncio
import logging
import math
import random
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from csms.protocol.session import Session
from csms.state.connections import DRAINING

if TYPE_CHECKING:
    from csms.web.app import CsmsApp

logger = logging.getLogger("csms.drain")
T = TypeVar("T")
STEP = 0.1  # seconds between batches, before jitter
POLL = 0.05


def plan(count: int, spread: float) -> tuple[int, int]:
    """(batch size, number of batches) to close `count` sockets over `spread` seconds."""
    batches = max(1, min(count, int(spread / STEP)))
    return math.ceil(count / batches) if count else 0, batches


async def _settled(session: Session, loop: asyncio.AbstractEventLoop, until: float) -> None:
    while session.busy and loop.time() < until:
        await asyncio.sleep(POLL)


async def in_batches(items: list[T], close: Callable[[T], Awaitable[None]],
                     spread: float) -> None:
    """Close `items` in shuffled batches spread over `spread` seconds, with jitter."""
    random.shuffle(items)
    size, batches = plan(len(items), spread)
    logger.info("draining %d stations in %d batches", len(items), batches)
    for start in range(0, len(items), size or 1):
        await asyncio.gather(*(close(item) for item in items[start:start + size]),
                             return_exceptions=True)
        if start + size < len(items):
            await asyncio.sleep(STEP * random.uniform(0.5, 1.5))


async def drain(app: "CsmsApp", bound: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    app.draining = True
    connections = app.services.connections

    async def close(session: Session) -> None:
        await _settled(session, loop, min(end, loop.time() + 5.0))
        if connections.get(session.station_id) is session:
            await connections.disconnect(session.station_id, DRAINING)

    try:
        async with asyncio.timeout_at(end):
            # A fifth of the bound is left for in-flight work once the last batch is closed.
            await in_batches(connections.sessions(), close,
                             min(app.settings.drain_spread, bound * 0.8))
            await app.services.router.idle()
    except TimeoutError:
        logger.warning("drain bound of %.0f s reached; closing the rest at once", bound)
    logger.info("drained")


def watch_sigterm(start: Callable[[], "asyncio.Task[None]"]) -> None:
    """On SIGTERM, `start` a drain; when it is over, hand the signal to uvicorn's own
    handler (its shutdown), as if the drain had not been there."""
    uvicorn_handler = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    started: list[asyncio.Task[None]] = []

    def on_sigterm() -> None:
        if started:
            return
        logger.info("SIGTERM: draining")
        started.append(start())
        started[0].add_done_callback(lambda _: hand_over())

    def hand_over() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, uvicorn_handler)
        if callable(uvicorn_handler):
            uvicorn_handler(signal.SIGTERM, None)
        else:  # not under uvicorn's handler: let the signal do what it would have done
            signal.raise_signal(signal.SIGTERM)

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.warning("SIGTERM drain is unavailable in this process")
