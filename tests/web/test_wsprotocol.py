"""The lean websocket protocol's stand-ins for asyncio.Queue and asyncio.Event."""

import asyncio

from csms.web.wsprotocol import LeanWebSocketProtocol, _Flag, _Inbox
from tests.polling import eventually


async def test_the_inbox_is_first_in_first_out_and_wakes_its_reader() -> None:
    inbox = _Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await eventually(lambda: inbox._waiter is not None)  # the reader waits on an empty inbox
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await reader == "a"
    assert not inbox.empty() and await inbox.get() == "b" and inbox.empty()


async def test_a_cancelled_reader_leaves_the_inbox_usable() -> None:
    inbox = _Inbox()
    reader = asyncio.create_task(inbox.get())
    await eventually(lambda: inbox._waiter is not None)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    inbox.put_nowait("x")
    assert await asyncio.wait_for(inbox.get(), 1) == "x"


async def test_the_flag_releases_every_waiter_when_set() -> None:
    flag = _Flag()
    flag.set()
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await eventually(lambda: len(flag._waiters or []) == 3)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]


def test_the_protocol_is_uvicorns_sans_io_one() -> None:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    assert issubclass(LeanWebSocketProtocol, WebSocketsSansIOProtocol)
