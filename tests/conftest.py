"""Shared helpers: a wire that records what a session sends, and in-memory sessions."""

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from csms.protocol.router import Router, tables
from csms.protocol.session import Session


class Wire:
    """The station's end of an in-memory connection: frames the session sent, in order."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self._arrived = asyncio.Condition()

    async def send(self, text: str) -> None:
        async with self._arrived:
            self.frames.append(orjson.loads(text))
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[list[Any]]:
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.frames) >= count)
        return self.frames


SessionFactory = Callable[..., tuple[Session, Wire]]


@pytest.fixture
def make_session() -> SessionFactory:
    def make(version: str, *routers: Router, **kwargs: Any) -> tuple[Session, Wire]:
        wire = Wire()
        session = Session("CP-1", version, tables(list(routers))[version], wire.send, **kwargs)
        return session, wire

    return make
