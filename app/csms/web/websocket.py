"""The OCPP websocket endpoint: `/ocpp/{station_id}`."""

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from csms.observability import tracing
from csms.protocol.session import Session
from csms.protocol.versions import subprotocol
from csms.web.handshake import Rejection, admit, choose_version, retry_later, station_id
from csms.web.wsprotocol import PING_TIMEOUT

if TYPE_CHECKING:
    from csms.web.app import CsmsApp

logger = logging.getLogger("csms.websocket")

ASGIMessage = dict[str, Any]
NO_SUBPROTOCOL = "no agreed OCPP subprotocol"


async def deny(scope: dict[str, Any], send: Any, rejection: Rejection) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = (rejection.message + "\n").encode()
        await send({"type": "websocket.http.response.start", "status": rejection.status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                *rejection.headers]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # the server cannot send a status: the closest it has is a 403
        await send({"type": "websocket.close", "code": 1008})


# Close codes a station's own close is counted under; other codes are "other", so that a
# station cannot make a metric series per code it invents.
_PEER_CLOSES = {1000: "normal", 1001: "going_away", 1002: "protocol_error",
                1005: "no_status", 1006: "connection_lost", 1007: "bad_data",
                1008: "policy", 1009: "too_big", 1011: "station_error"}


def peer_close(code: int, reason: str | None = None) -> str:
    if code == 1011 and reason == PING_TIMEOUT:
        return "ping_timeout"
    return _PEER_CLOSES.get(code, "other")


class _Socket:
    """The ASGI send of one websocket, as the session and the connection table use it.
    (A slotted object rather than two closures: it is kept once per connection.)"""

    __slots__ = ("_send",)

    def __init__(self, send: Any) -> None:
        self._send = send

    def text(self, text: str) -> Awaitable[None]:
        # Returns the server's own coroutine: no extra coroutine layer per message.
        return self._send({"type": "websocket.send", "text": text})  # type: ignore[no-any-return]

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def decide(app: "CsmsApp", scope: dict[str, Any], span: Any = None
                 ) -> tuple[str, Any, str | None]:
    """Admit the station, or raise the `Rejection` (counted, logged, traced): its id, entry
    and the version agreed, None when no offered subprotocol is allowed (counted too).
    The websocket endpoint and the gateway's connect share it."""
    metrics = app.metrics
    sid: str | None = None
    try:
        if app.draining:
            raise retry_later("draining", "server is shutting down", 5)
        sid = station_id(scope)
        if not app.admissions.take():
            raise retry_later("rate_limited", "too many new connections; retry later", 5)
        entry = await admit(app.services, scope, sid, app.credentials,
                            app.certificates)
    except Rejection as rejection:
        if metrics:
            metrics.rejections.labels(rejection.reason).inc()
        if rejection.status in (401, 403) and sid is not None:  # a registered station
            app.services.presence.rejected(sid, rejection.reason)
        logger.info("handshake refused (%s): %s", rejection.status, rejection.message)
        if span is not None:
            tracing.refused(span, sid, rejection.reason, rejection.status)
        raise
    offered = scope.get("subprotocols") or []
    version = choose_version(offered, entry)
    if version is None:
        if metrics:
            metrics.rejections.labels("no_subprotocol").inc()
        logger.info("%s offered %s; none is allowed", sid, offered)
        if span is not None:
            tracing.refused(span, sid, "no_subprotocol", 101)
    elif span is not None:
        tracing.admitted(span, sid, version)
    return sid, entry, version


async def _handshake(app: "CsmsApp", scope: dict[str, Any], send: Any, span: Any = None
                     ) -> tuple[str, Any, str] | None:
    """Admit the station and accept the upgrade, or refuse it; (id, entry, version) if open.
    `span`, when tracing, gets the outcome."""
    try:
        sid, entry, version = await decide(app, scope, span)
    except Rejection as rejection:
        await deny(scope, send, rejection)
        return None
    if version is None:
        # OCPP-J: complete the handshake without a subprotocol, then close at once.
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1002, "reason": NO_SUBPROTOCOL})
        return None
    await send({"type": "websocket.accept", "subprotocol": subprotocol(version)})
    return sid, entry, version


async def serve(app: "CsmsApp", scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    traces = app.tracing
    span = None if traces is None else traces.handshake(scope)
    try:
        admitted = await _handshake(app, scope, send, span)
    finally:
        if span is not None:
            span.end()
    if admitted is None:
        return
    sid, entry, version = admitted
    del admitted  # this frame lives as long as the connection: keep only what it needs
    metrics = app.metrics
    socket = _Socket(send)
    session = Session(sid, version, app.tables[version], socket.text, station=entry,
                      hooks=app.hooks, call_timeout=app.settings.call_timeout,
                      max_depth=app.settings.max_depth, tracer=traces)
    if span is not None:
        session.trace_link = span.get_span_context()
    del span
    await app.services.connections.add(session, socket)
    await app.services.stations.record_protocol(sid, version)
    logger.info("%s connected with OCPP %s", sid, version)
    app.services.presence.connected(sid, app.services.router.owner_id, version)
    app.services.events.publish(sid, version, "connected", {})
    if metrics:
        metrics.opened(version)
    reason = "closed"
    try:
        await app.services.router.claim(session)
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is None:
                    reason = "binary_frame"
                    await socket.close(1003, "binary frames are not supported; OCPP-J uses text")
                    break
                session.receive(text)
            else:
                # Closed by us (the label says why), or by the station or the network.
                reason = session.close_label or peer_close(message.get("code", 1005),
                                                           message.get("reason"))
                break
    finally:
        app.gc.closed += 1
        session.close("disconnected")
        current = app.services.connections.remove(session)
        logger.info("%s disconnected (%s)", sid, reason)
        app.services.events.publish(sid, version, "disconnected",
                                    {"reason": reason, "current": current})
        if metrics:
            metrics.closed(version, reason)
        if current:  # last: the one step that waits (on Redis, in cluster mode)
            app.services.presence.disconnected(sid)
            await app.services.router.release(session)
