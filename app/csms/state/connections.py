"""This process's open station connections: newest connection wins.

When a station connects while an older socket of the same id is open, the old one is closed
and its pending and queued CALLs fail with `NotConnected`.
"""

import dataclasses
import logging
from typing import Protocol

from csms.protocol.session import Session

logger = logging.getLogger("csms.connections")


class Socket(Protocol):
    async def close(self, code: int, reason: str) -> None: ...

SUPERSEDED = "superseded by a newer connection"


@dataclasses.dataclass(slots=True)
class Connection:
    session: Session
    socket: Socket


class Connections:
    def __init__(self) -> None:
        self._open: dict[str, Connection] = {}

    def get(self, station_id: str) -> Session | None:
        conn = self._open.get(station_id)
        return conn.session if conn is not None else None

    def sessions(self) -> list[Session]:
        return [c.session for c in self._open.values()]

    async def add(self, session: Session, socket: Socket) -> None:
        old = self._open.get(session.station_id)
        self._open[session.station_id] = Connection(session, socket)
        if old is not None:
            logger.info("%s: %s", session.station_id, SUPERSEDED)
            old.session.close(SUPERSEDED)
            try:
                await old.socket.close(1000, SUPERSEDED)
            except Exception as exc:
                logger.debug("closing superseded socket failed: %s", exc)

    def remove(self, session: Session) -> bool:
        """Forget `session` if it is still the current one; True when it was."""
        conn = self._open.get(session.station_id)
        if conn is not None and conn.session is session:
            del self._open[session.station_id]
            return True
        return False

    async def disconnect(self, station_id: str, code: int, reason: str) -> bool:
        conn = self._open.get(station_id)
        if conn is None:
            return False
        conn.session.close(reason)
        await conn.socket.close(code, reason)
        return True

    async def close_all(self, code: int, reason: str) -> None:
        for conn in list(self._open.values()):
            conn.session.close(reason)
            try:
                await conn.socket.close(code, reason)
            except Exception as exc:
                logger.debug("close failed: %s", exc)
