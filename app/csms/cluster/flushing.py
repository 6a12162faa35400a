"""The loop behind every write-behind buffer in cluster mode (events, station state)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

logger = logging.getLogger("csms.cluster")
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 5.0


async def flush_forever(wake: asyncio.Event, flush: Callable[[], Awaitable[None]],
                        waiting: Callable[[], str]) -> None:
    """Flush each time `wake` is set. While Redis is unreachable, back off (0.1 s doubling
    to 5 s) and retry, with one warning per outage saying what `waiting` is held back."""
    backoff, warned = FIRST_BACKOFF, False
    while True:
        await wake.wait()
        wake.clear()
        try:
            await flush()
            if warned:
                logger.info("Redis reachable again: buffered writes flushed")
            backoff, warned = FIRST_BACKOFF, False
        except RedisError as exc:
            if not warned:
                logger.warning("%s waiting for Redis: %s", waiting(), exc)
                warned = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            wake.set()


async def stop_flushing(task: "asyncio.Task[None]", flush: Callable[[], Awaitable[None]],
                        waiting: Callable[[], str]) -> None:
    """End the loop, then flush what is left once: what Redis takes before shutdown.

    The loop is cancelled until it has ended: redis-py (8.1) can swallow a cancellation that
    arrives mid-command, after an outage, and a loop that survived it would hold the shutdown
    forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    try:
        await flush()
    except RedisError as exc:
        logger.warning("%s lost at shutdown, Redis unreachable: %s", waiting(), exc)
