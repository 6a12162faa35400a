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
from collections.abc import Callable
from typing import TYPE_CHECKING

from csms.protocol.session import Session
from csms.state.connections import DRAINING

if TYPE_CHECKING:
    from csms.web.app import CsmsApp

logger = logging.getLogger("csms.drain")
STEP = 0.1  # seconds between batches, before jitter
POLL = 0.05


def plan(count: int, spread: float) -> tuple[int, int]:
    """(batch size, number of batches) to close `count` sockets over `spread` seconds."""
    batches = max(1, min(count, int(spread / STEP)))
    return math.ceil(count / batches) if count else 0, batches


async def _settled(session: Session, loop: asyncio.AbstractEventLoop, until: float) -> None:
    while session.busy and loop.time() < until:
        await asyncio.sleep(POLL)


async def drain(app: "CsmsApp", bound: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    app.draining = True
    connections = app.services.connections
    sessions = connections.sessions()
    random.shuffle(sessions)
    # Leave a fifth of the bound for in-flight work once the last batch is closed.
    size, batches = plan(len(sessions), min(app.settings.drain_spread, bound * 0.8))
    logger.info("draining %d stations in %d batches", len(sessions), batches)

    async def close(session: Session) -> None:
        await _settled(session, loop, min(end, loop.time() + 5.0))
        if connections.get(session.station_id) is session:
            await connections.disconnect(session.station_id, DRAINING)

    try:
        async with asyncio.timeout_at(end):
            for start in range(0, len(sessions), size or 1):
                await asyncio.gather(*(close(s) for s in sessions[start:start + size]),
                                     return_exceptions=True)
                if start + size < len(sessions):
                    await asyncio.sleep(STEP * random.uniform(0.5, 1.5))
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
