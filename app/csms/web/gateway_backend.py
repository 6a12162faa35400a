"""Gateway mode's endpoints (`CSMS_MODE=gateway`): `POST /gateway/connect`, `/gateway/message`
and `/gateway/disconnect`, as `csms.serverless.contract` describes them.

Every request finishes the work it starts before it is answered (handlers, after-hooks, the
queued commands of a new connection): under AWS Lambda nothing runs between invocations.
The reply to a station's CALL is the response, unless the backend must call the station
first (an after-hook's CALL, a queued command): the reply then goes out ahead of it, through
the gateway, and the response is empty.
"""

import logging
import re
from typing import TYPE_CHECKING, Any

from csms.protocol import frames
from csms.protocol.errors import FrameError
from csms.protocol.versions import subprotocol
from csms.serverless.connections_api import ConnectionsApi
from csms.serverless.contract import (
    CLIENT_CERT,
    CLOSE_CODE,
    CLOSE_REASON,
    CONNECT,
    CONNECTION_ID,
    DISCONNECT,
    ENDPOINT,
    FORWARDED_PROTO,
    MESSAGE,
    PREFIX,
    SIGNING,
    STATION_PATH,
    Link,
    token_ok,
    valid_connection_id,
)
from csms.state.connections import EVICTED, SUPERSEDED, Closing
from csms.state.errors import Unavailable
from csms.web.handshake import Rejection, header, retry_later
from csms.web.http_frames import read_body, respond
from csms.web.websocket import decide, peer_close

if TYPE_CHECKING:
    from csms.cluster.gateway import GatewayRouter
    from csms.web.app import CsmsApp

logger = logging.getLogger("csms.gateway")

_ANSWER = re.compile(r"\s*\[\s*[34]")
UNKNOWN = Closing("unknown", 1008, "connection unknown to the central system")
# The station's headers a connect request passes on to admission.
_STATION_HEADERS = (b"authorization", b"sec-websocket-protocol", b"user-agent")


class _Reply:
    """Where a frame's session writes: the answer to the frame is held for the response;
    anything else (our CALLs, later writes) goes to the gateway, the held answer first."""

    __slots__ = ("_api", "_link", "sent", "text")

    def __init__(self, api: ConnectionsApi, link: Link) -> None:
        self._api = api
        self._link = link
        self.text: str | None = None
        self.sent = False  # the held answer went out through the gateway

    async def write(self, text: str) -> None:
        if self.text is None and not self.sent and text[1] in "34":
            self.text = text  # a CALLRESULT or CALLERROR: the answer to the frame
            return
        if self.text is not None and not self.sent:
            self.sent = True
            await self._api.send(self._link, self.text)
        await self._api.send(self._link, text)


def _router(app: "CsmsApp") -> "GatewayRouter":
    assert app.gateway is not None, "served in gateway mode only"
    return app.gateway


async def serve(app: "CsmsApp", scope: dict[str, Any], receive: Any, send: Any) -> None:
    event = scope["path"][len(PREFIX):]
    if scope["method"] != "POST":
        await respond(send, 405, b"POST gateway events\n", headers=[(b"allow", b"POST")])
        return
    if not token_ok(scope, app.settings.gateway_token):
        await respond(send, 401, b"X-Gateway-Token is missing or wrong\n")
        return
    handler = _HANDLERS.get(event)
    if handler is None:
        await respond(send, 404, b"gateway events: connect, message, disconnect\n")
        return
    connection_id = header(scope, CONNECTION_ID) or ""
    if not valid_connection_id(connection_id):
        await respond(send, 400, b"X-Connection-Id is missing or malformed\n")
        return
    body = await read_body(receive, app.settings.max_frame_size)
    if body is None:
        await respond(send, 413, b"frame larger than the configured limit\n")
        return
    try:
        await handler(app, scope, connection_id, body, send)
    except Unavailable as exc:
        rejection = retry_later("unavailable", f"cluster state unreachable: {exc}", 10)
        await respond(send, 503, (rejection.message + "\n").encode(),
                      headers=rejection.headers)


def _link(app: "CsmsApp", scope: dict[str, Any], connection_id: str) -> Link | None:
    """The connection as the request names it, None without a usable endpoint."""
    endpoint = header(scope, ENDPOINT) or ""
    if not endpoint.startswith(("http://", "https://")) and not app.settings.gateway_endpoint:
        return None
    return _fixed(app, Link(endpoint, connection_id, header(scope, SIGNING) or ""))


def _fixed(app: "CsmsApp", link: Link) -> Link:
    """CSMS_GATEWAY_ENDPOINT, when set, wins over the endpoint requests or records name."""
    fixed = app.settings.gateway_endpoint
    return link if fixed is None else Link(fixed, link.connection_id, link.signing)


def station_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The station's handshake as the websocket endpoint would have seen it."""
    path = header(scope, STATION_PATH) or ""
    offered = header(scope, b"sec-websocket-protocol") or ""
    subject = header(scope, CLIENT_CERT)
    return {
        "type": "websocket", "path": path, "raw_path": path.encode("latin-1"),
        "scheme": "wss" if header(scope, FORWARDED_PROTO) == "wss" else "ws",
        "headers": [(k, v) for k, v in scope.get("headers", []) if k in _STATION_HEADERS],
        "subprotocols": [p.strip() for p in offered.split(",") if p.strip()],
        "extensions": {"tls": {"client_cert_name": subject}} if subject else {},
    }


async def connect(app: "CsmsApp", scope: dict[str, Any], connection_id: str, body: bytes,
                  send: Any) -> None:
    link = _link(app, scope, connection_id)
    if link is None:
        await respond(send, 400, b"X-Gateway-Endpoint is missing or not an http(s) URL\n")
        return
    if not header(scope, STATION_PATH):
        await respond(send, 400, b"X-Station-Path is missing\n")
        return
    try:
        sid, _, version = await decide(app, station_scope(scope))
    except Rejection as rejection:
        await respond(send, rejection.status, (rejection.message + "\n").encode(),
                      headers=rejection.headers)
        return
    if version is None:  # the gateway completes the handshake without one, and closes 1002
        await respond(send, 200, b"")
        return
    router = _router(app)
    previous = await router.connected(sid, link, version)
    if previous is not None:
        logger.info("%s: %s", sid, SUPERSEDED.reason)
        await router.close_link(previous, SUPERSEDED)
    services = app.services
    await services.stations.record_protocol(sid, version)
    services.presence.connected(sid, link.endpoint, version)
    services.events.publish(sid, version, "connected", {})
    if app.metrics:
        app.metrics.connects.labels(version).inc()
    logger.info("%s connected with OCPP %s through %s", sid, version, link.endpoint)
    await respond(send, 200, b"", headers=[(b"sec-websocket-protocol",
                                           subprotocol(version).encode())])


async def message(app: "CsmsApp", scope: dict[str, Any], connection_id: str, body: bytes,
                  send: Any) -> None:
    router = _router(app)
    connection = await router.connection(connection_id)
    link = _link(app, scope, connection_id)
    if connection is None or connection.superseded:
        if link is not None:
            await router.close_link(link, SUPERSEDED if connection else UNKNOWN)
        await respond(send, 410, b"connection unknown or superseded\n")
        return
    sid = connection.station_id
    link = _fixed(app, connection.link)
    entry = connection.entry or app.services.default_entry
    if entry is None or not entry.enabled:
        logger.info("%s: %s", sid, EVICTED.reason)
        await router.close_link(link, EVICTED)
        await respond(send, 410, b"station removed from the registry or disabled\n")
        return
    text = body.decode("utf-8", errors="replace")
    if await _answer_to_us(router, sid, text):
        await respond(send, 204, b"")
        return
    reply = _Reply(router.api, link)
    session = app.gateway_session(sid, connection.version, link, reply.write, entry)
    session.receive(text)
    await session.idle()
    if connection.fresh:  # the connection's first frame: its queued commands go now
        await router.deliver(sid, reply.write)
    if reply.text is not None and not reply.sent:
        await respond(send, 200, reply.text.encode(), b"application/json")
    else:
        await respond(send, 204, b"")


async def _answer_to_us(router: "GatewayRouter", station_id: str, text: str) -> bool:
    """A CALLRESULT or CALLERROR some backend waits for: handed to it. Anything else (and
    an answer nobody waits for, which the session reports) goes to a session."""
    if _ANSWER.match(text) is None:  # no copy of the frame for the CALLs that pass here
        return False
    try:
        frame = frames.parse(text)
    except FrameError:
        return False
    if len(frame) < 2 or not frames.valid_id(frame[1]):
        return False
    return await router.reply(station_id, frame[1], text)


async def disconnect(app: "CsmsApp", scope: dict[str, Any], connection_id: str, body: bytes,
                     send: Any) -> None:
    sid, version, current = await _router(app).disconnected(connection_id)
    if sid:
        try:
            code = int(header(scope, CLOSE_CODE) or 1005)
        except ValueError:
            code = 1005
        reason = peer_close(code, header(scope, CLOSE_REASON))
        logger.info("%s disconnected (%s)", sid, reason)
        app.services.events.publish(sid, version, "disconnected",
                                    {"reason": reason, "current": current})
        if app.metrics:
            app.metrics.disconnects.labels(version, reason).inc()
        if current:
            app.services.presence.disconnected(sid)
    await respond(send, 204, b"")


_HANDLERS = {CONNECT: connect, MESSAGE: message, DISCONNECT: disconnect}
