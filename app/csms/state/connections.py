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



@dataclasses.dataclass(frozen=True, slots=True)
class Closing:
    """Why csms closes a station's socket: the close code and reason the station gets, and
    the label of the disconnect log line and of `csms_disconnections_total`."""

    label: str
    code: int
    reason: str


SUPERSEDED = Closing("superseded", 1000, "superseded by a newer connection")
EVICTED = Closing("evicted", 1008, "station removed from the registry or disabled")
DRAINING = Closing("draining", 1012, "service restart")
SHUTDOWN = Closing("shutdown", 1001, "server shutting down")


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
            logger.info("%s: %s", session.station_id, SUPERSEDED.reason)
            await self._close(old, SUPERSEDED)

    def remove(self, session: Session) -> bool:
        """Forget `session` if it is still the current one; True when it was."""
        conn = self._open.get(session.station_id)
        if conn is not None and conn.session is session:
            del self._open[session.station_id]
            return True
        return False

    async def disconnect(self, station_id: str, closing: Closing) -> bool:
        conn = self._open.get(station_id)
        if conn is None:
            return False
        await self._close(conn, closing)
        return True

    async def close_all(self, closing: Closing) -> None:
        for conn in list(self._open.values()):
            await self._close(conn, closing)

    @staticmethod
    async def _close(conn: Connection, closing: Closing) -> None:
        conn.session.close(closing.reason, closing.label)
        try:
            await conn.socket.close(closing.code, closing.reason)
        except Exception as exc:
            logger.debug("closing %s failed: %s", conn.session.station_id, exc)
