"""A station's session in gateway mode: made for one request, not for the connection.

The station's socket is on the gateway, so a backend builds a session for each frame (and
each call it makes) from the connection kept in Redis. Our CALLs take the station's *turn*
first: one outstanding CALL per station across every backend, its message id reserved in
Redis so that the station's answer, wherever it arrives, finds its way back to the waiter.
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from csms.protocol.router import Payload, RouteTable
from csms.protocol.session import Session
from csms.serverless.contract import Link


class Turns(Protocol):
    def turn(self, session: "GatewaySession",
             timeout: float) -> AbstractAsyncContextManager[str]:
        """Wait for the station's turn (no CALL of ours outstanding anywhere), hold it while
        the block runs; yields the message id the CALL must use."""


class GatewaySession(Session):
    __slots__ = ("_reserved", "_turns", "link")

    def __init__(self, link: Link, turns: Turns, station_id: str, version: str,
                 table: RouteTable, send: Callable[[str], Awaitable[None]],
                 **options: Any) -> None:
        super().__init__(station_id, version, table, send, **options)
        self.link = link
        self._turns = turns
        self._reserved = ""

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        async with self._turns.turn(self, self.call_timeout if timeout is None else timeout
                                    ) as message_id:
            self._reserved = message_id
            return await super().call(action, payload, timeout)

    def _message_id(self) -> str:
        return self._reserved
