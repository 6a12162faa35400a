"""Calls to stations as the API sees them: an HTTP status and a body, whichever process holds
the station's socket.

`call_session` turns a `Session.call` into an `Outcome`; the same outcome travels between pods
in cluster mode, so a call answered on another pod looks exactly like a local one.
"""

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from csms.protocol.errors import (
    CallErrorReceived,
    CallTimeout,
    NotConnected,
    PayloadInvalid,
    ResponseInvalid,
)
from csms.protocol.session import Session
from csms.state.connections import Connections
from csms.state.errors import Unavailable


class Outcome(NamedTuple):
    status: int  # 200 answered; 404, 422, 502, 503, 504 as the API documents
    body: Any  # the CALLRESULT payload on 200, else the error detail
    sent: bool = True  # False when the CALL never went out (safe to send again)

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Outcome":
        return cls(int(data["status"]), data["body"])


def not_connected(station_id: str) -> Outcome:
    return Outcome(404, f"station {station_id!r} is not connected", sent=False)


async def call_session(session: Session, action: str, payload: dict[str, Any],
                       timeout: float | None) -> Outcome:
    """CALL the station and say how it went, never raising for the station's behaviour."""
    try:
        result = await session.call(action, payload, timeout)
    except PayloadInvalid as exc:
        return Outcome(422, {"code": exc.error.code.value, "description": exc.error.description,
                             **exc.error.details})
    except CallErrorReceived as exc:
        return Outcome(502, {"code": exc.code, "description": exc.description,
                             "details": exc.details})
    except ResponseInvalid as exc:
        return Outcome(502, {"code": "ResponseInvalid", "description": exc.error.description})
    except CallTimeout as exc:
        return Outcome(504, str(exc))
    except NotConnected as exc:
        return Outcome(404, str(exc), sent=exc.sent)
    except Unavailable as exc:  # gateway mode: the call's turn is kept in Redis
        return Outcome(503, f"cluster state unreachable (Redis): {exc}", sent=False)
    return Outcome(200, result)


class CallRouter(Protocol):
    """Where a station's socket is, and how a call reaches it.

    The embedded router knows only this process's sockets; the Redis one (`csms.cluster`)
    records ownership with a lease and forwards calls to the owning pod.
    """

    owner_id: str
    # The process's tracing (csms.observability.tracing) and runtime metrics
    # (csms.observability.runtime), set at start-up; None when off.
    tracing: Any
    runtime: Any
    # Called with a session that is ours and may have queued commands to deliver.
    wake: Callable[[Session], None]
    # Called with control messages for stations held here ("evict", "configure").
    control: Callable[[dict[str, Any]], Awaitable[None]]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def claim(self, session: Session) -> None:
        """`session` is this station's newest connection: take ownership of it."""

    async def release(self, session: Session) -> None:
        """`session` closed: give up ownership if it is still ours."""

    async def owner(self, station_id: str) -> str | None:
        """The owner id holding the station's socket, or None."""

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None) -> Outcome: ...

    async def notify(self, station_id: str) -> None:
        """Tell the owner that the station has queued commands (no-op if offline)."""

    async def idle(self) -> None:
        """Wait for the calls other processes asked of this one to finish."""


class LocalRouter:
    """One process: the station is here or it is not connected."""

    def __init__(self, connections: Connections, owner_id: str = "local") -> None:
        self.owner_id = owner_id
        self._connections = connections
        self.tracing: Any = None  # calls stay in this process: the session traces them
        self.runtime: Any = None
        self.wake: Callable[[Session], None] = _ignore
        self.control: Callable[[dict[str, Any]], Awaitable[None]] = _no_control

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def claim(self, session: Session) -> None:
        self.wake(session)

    async def release(self, session: Session) -> None:
        return None

    async def owner(self, station_id: str) -> str | None:
        return self.owner_id if self._connections.get(station_id) is not None else None

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None) -> Outcome:
        session = self._connections.get(station_id)
        if session is None:
            return not_connected(station_id)
        return await call_session(session, action, payload, timeout)

    async def notify(self, station_id: str) -> None:
        session = self._connections.get(station_id)
        if session is not None:
            self.wake(session)


    async def idle(self) -> None:
        return None


def _ignore(session: Session) -> None:
    return None


async def _no_control(message: dict[str, Any]) -> None:
    return None
