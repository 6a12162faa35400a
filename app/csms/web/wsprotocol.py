"""uvicorn's websocket protocol (its `websockets-sansio` implementation), leaner per connection.

A central system holds tens of thousands of idle websockets, so what each one keeps matters.
uvicorn's protocol keeps, for the whole life of a connection, things it needs only for an
instant or allocates eagerly for traffic an idle station never sends:

- an `asyncio.Queue` for incoming ASGI events: three deques, about 2.3 KB;
- an `asyncio.Event` for write flow control: one deque, about 0.8 KB;
- the handshake's request and response, with their headers: about 2.5 KB.

This subclass swaps the first two for slotted equivalents that allocate only when used, and
drops the handshake objects once the handshake is answered. It also adds the ASGI TLS
extension (the verified client certificate, for security profile 3; see `tls`), and marks a
refused handshake complete so uvicorn does not log it as an error. Otherwise behaviour is
uvicorn's own:
`csms serve` uses it unless `CSMS_WS` names another implementation.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from csms.web.tls import tls_extension

PING_TIMEOUT = "keepalive ping timeout"  # the reason uvicorn closes such a socket with


class _Inbox:
    """The part of `asyncio.Queue` the protocol uses, for its single consumer."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """The part of `asyncio.Event` the protocol uses; waiters only while writes are paused."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the upgrade itself was refused
        if scope is not None and self.scheme == "wss":
            tls = tls_extension(self.transport)
            if tls is not None:
                scope["extensions"]["tls"] = tls

    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        # Not a coroutine of its own: no extra layer on every message sent.
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A refusal's last part: the handshake ends here. uvicorn leaves it open and logs
            # "ASGI callable returned without completing handshake" at ERROR per refusal.
            self.handshake_complete = True
        return super().send(message)

    def keepalive_timeout(self) -> None:
        # Tell the app why (uvicorn's own disconnect, later, says 1005 "no status").
        if not (self.close_sent or self.transport.is_closing()):
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1011,
                                   "reason": PING_TIMEOUT})
        super().keepalive_timeout()

    def start_keepalive(self) -> None:
        # Called once, right after the accepted handshake's response went out: the request
        # and response are done with (nothing in uvicorn reads them later).
        super().start_keepalive()
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
