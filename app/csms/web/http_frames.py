"""OCPP frames posted over HTTP, for gateways that terminate the websocket themselves
(e.g. AWS API Gateway): `POST /ocpp/{station_id}` with one frame as the body and the version
in the `OCPP-Version` header (or `Sec-WebSocket-Protocol`); the reply frame is the response.

The same routers, validation and error table apply. A station reached this way has no
channel for central-system calls: `context.call` raises `NotConnected`.
"""

from typing import TYPE_CHECKING, Any

from csms.protocol.errors import NotConnected
from csms.protocol.router import Payload
from csms.protocol.session import Session
from csms.protocol.versions import normalize
from csms.web.handshake import Rejection, admit, header, station_id

if TYPE_CHECKING:
    from csms.web.app import CsmsApp


class HttpSession(Session):
    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        raise NotConnected(f"{self.station_id} posts frames over HTTP; it cannot be called")

    async def send_unconfirmed(self, action: str, payload: Payload) -> None:
        raise NotConnected(f"{self.station_id} posts frames over HTTP; it cannot be called")


async def respond(send: Any, status: int, body: bytes, content_type: bytes = b"text/plain",
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def requested_version(scope: dict[str, Any]) -> str:
    value = header(scope, b"ocpp-version") or header(scope, b"sec-websocket-protocol")
    if value is None:
        raise Rejection(400, "no_version", "OCPP-Version header is required")
    try:
        return normalize(value.split(",")[0].strip())
    except ValueError as exc:
        raise Rejection(400, "bad_version", str(exc)) from None


async def serve(app: "CsmsApp", scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["method"] != "POST":
        await respond(send, 405, b"POST one OCPP-J frame\n", headers=[(b"allow", b"POST")])
        return
    try:
        sid = station_id(scope)
        entry = await admit(app.services, scope, sid, app.credentials,
                            app.certificates)
        version = requested_version(scope)
        if version not in entry.versions:
            raise Rejection(400, "version_not_allowed", f"OCPP {version} is not allowed")
    except Rejection as rejection:
        if app.metrics:
            app.metrics.rejections.labels(rejection.reason).inc()
        await respond(send, rejection.status, (rejection.message + "\n").encode(),
                      headers=rejection.headers)
        return
    body = await read_body(receive, app.settings.max_frame_size)
    if body is None:
        await respond(send, 413, b"frame larger than the configured limit\n")
        return
    replies: list[str] = []

    async def collect(text: str) -> None:
        replies.append(text)

    session = HttpSession(sid, version, app.tables[version], collect, station=entry,
                          hooks=app.hooks, call_timeout=app.settings.call_timeout,
                          max_depth=app.settings.max_depth, tracer=app.tracing)
    session.receive(body)
    await session.idle()
    if replies:
        await respond(send, 200, replies[0].encode(), b"application/json")
    else:  # a SEND, or a reply frame: nothing to answer
        await respond(send, 202, b"")
