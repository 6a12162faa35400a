"""`csms gateway`: a lean websocket terminator in front of gateway-mode backends, doing
what AWS API Gateway WebSocket APIs do (`csms.serverless.contract`).

It holds the stations' sockets and nothing else: each connect, frame and disconnect is
posted to the backend, whose answer decides the handshake or is sent back as the reply
frame; backends reach a station through the `@connections` API served here. Frames are
forwarded concurrently, so a station's answer to one of our CALLs gets through while its own
CALL waits for a handler that is calling it. Ping, size limit and close codes are the
websocket endpoint's; when the backend cannot be reached, a station's CALL is answered
CALLERROR InternalError and its handshake 503.
"""

import asyncio
import base64
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from csms.clock import rfc3339
from csms.config import GatewaySettings
from csms.protocol import frames
from csms.protocol.errors import FrameError
from csms.serverless.backend_client import BackendClient, BackendDown
from csms.serverless.contract import (
    CLIENT_CERT,
    CLOSE_CODE,
    CLOSE_REASON,
    CONNECT,
    CONNECTION_ID,
    CONNECTIONS,
    DISCONNECT,
    ENDPOINT,
    FORWARDED_PROTO,
    MESSAGE,
    PREFIX,
    STATION_PATH,
    TOKEN,
    token_ok,
)
from csms.state.admission import TokenBucket
from csms.state.connections import DRAINING
from csms.web.drain import in_batches, watch_sigterm
from csms.web.handshake import Rejection, header, retry_later
from csms.web.http_frames import read_body, respond
from csms.web.websocket import NO_SUBPROTOCOL, deny

logger = logging.getLogger("csms.gateway")

OCPP_PREFIX = "/ocpp/"
SHUTDOWN_RESERVE = 5.0  # seconds of the graceful timeout kept for uvicorn after the drain
# The backend's answer headers a refused station gets too.
_PASSED_ON = (b"www-authenticate", b"retry-after")
UNKNOWN_TO_BACKEND = "connection unknown to the central system"


def new_connection_id() -> str:
    """16 URL-safe characters, like API Gateway's connection ids."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode()


class _Station:
    """One station's socket, as the @connections API and the forwarders use it."""

    __slots__ = ("closing", "connected_at", "connection_id", "forwards", "last_active_at",
                 "send", "source_ip", "user_agent")

    def __init__(self, connection_id: str, send: Any, scope: dict[str, Any]) -> None:
        self.connection_id = connection_id
        self.send = send
        self.connected_at = self.last_active_at = time.time()
        client = scope.get("client")
        self.source_ip = client[0] if client else ""
        self.user_agent = header(scope, b"user-agent") or ""
        self.closing = False
        self.forwards: set[asyncio.Task[None]] = set()

    async def text(self, text: str) -> bool:
        """Send a text frame; False when the socket has closed meanwhile."""
        if self.closing:
            return False
        self.last_active_at = time.time()
        try:
            await self.send({"type": "websocket.send", "text": text})
        except Exception as exc:  # the station went while the frame was on its way
            logger.debug("send to %s failed: %s", self.connection_id, exc)
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send({"type": "websocket.close", "code": code, "reason": reason})

    def info(self) -> dict[str, Any]:
        return {"connectedAt": rfc3339(self.connected_at),
                "lastActiveAt": rfc3339(self.last_active_at),
                "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent}}


class _Metrics:
    def __init__(self, gateway: "Gateway") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._gateway = gateway
        self.registry.register(self)
        self.handshakes = Counter("csms_gateway_handshakes", "Station handshakes, by answer",
                                  ["status"], registry=self.registry)
        self.frames = Counter("csms_gateway_frames", "Frames between stations and backends",
                              ["direction"], registry=self.registry)
        self.backend_errors = Counter("csms_gateway_backend_errors",
                                      "Requests to the backend that failed", ["event"],
                                      registry=self.registry)
        # Looked up once: every frame counts.
        self.frames_in, self.frames_out = self.frames.labels("in"), self.frames.labels("out")

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("csms_gateway_connections", "Open station connections",
                                value=len(self._gateway.stations))


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        assert settings.backend is not None
        self.settings = settings
        self.backend = settings.backend.rstrip("/") + PREFIX  # where events go
        self.endpoint = settings.advertise_url or default_endpoint(settings)
        self.stations: dict[str, _Station] = {}
        self.admissions = TokenBucket(settings.connect_rate, 2 * settings.connect_rate)
        self.metrics = _Metrics(self)
        self.draining = False
        self._client: BackendClient | None = None
        self._drain: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind, path = scope["type"], scope.get("path", "")
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif self.settings.internal_port is not None and (
                kind == "websocket") == self._internal(scope):
            # Split ports: stations only on the main one, everything else only internally.
            if kind == "websocket":
                await deny(scope, send, Rejection(404, "bad_path", "not found on this port"))
            else:
                await respond(send, 404, b"not found on this port\n")
        elif kind == "websocket":
            if path.startswith(OCPP_PREFIX):
                await self._station(scope, receive, send)
            else:
                await deny(scope, send, Rejection(
                    404, "bad_path", f"stations connect to {OCPP_PREFIX}{{station_id}}"))
        elif path.startswith(CONNECTIONS):
            await self._connections(scope, receive, send, path[len(CONNECTIONS):])
        elif path == "/healthz" or (path == "/readyz" and not self.draining):
            await respond(send, 200, b'{"status":"ok"}', b"application/json")
        elif path == "/readyz":
            await respond(send, 503, b'{"status":"draining"}', b"application/json")
        elif path == "/metrics":
            await respond(send, 200, generate_latest(self.metrics.registry),
                          b"text/plain; version=0.0.4")
        else:
            await respond(send, 404, b"not found\n")

    def _internal(self, scope: dict[str, Any]) -> bool:
        server = scope.get("server")
        return server is not None and server[1] == self.settings.internal_port

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = BackendClient(self.settings.backend or "",
                                             self.settings.backend_timeout)
                logger.info("forwarding to %s; backends post to %s%s{id}", self.backend,
                            self.endpoint, CONNECTIONS)
                watch_sigterm(self._start_drain)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                if self._drain is not None:
                    await self._drain
                for station in list(self.stations.values()):
                    await station.close(1001, "server shutting down")
                if self._client is not None:
                    self._client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_drain(self) -> "asyncio.Task[None]":
        self._drain = asyncio.get_running_loop().create_task(self.drain())
        return self._drain

    async def drain(self) -> None:
        """As `csms serve` drains (csms.web.drain): new handshakes get 503 and /readyz turns
        503 at once, then the sockets close with 1012 in jittered batches spread over
        CSMS_DRAIN_SPREAD, each once its frames in flight are answered (5 s at most)."""
        self.draining = True
        loop = asyncio.get_running_loop()
        bound = max(1.0, self.settings.graceful_timeout - SHUTDOWN_RESERVE)
        end = loop.time() + bound

        async def close(station: _Station) -> None:
            if station.forwards:
                await asyncio.wait(list(station.forwards),
                                   timeout=max(0.0, min(5.0, end - loop.time())))
            await station.close(DRAINING.code, DRAINING.reason)

        try:
            async with asyncio.timeout_at(end):
                await in_batches(list(self.stations.values()), close,
                                 min(self.settings.drain_spread, bound * 0.8))
        except TimeoutError:
            logger.warning("drain bound of %.0f s reached; closing the rest at once", bound)
        logger.info("drained")

    # -- to the backend --------------------------------------------------------------------

    def _headers(self, connection_id: str) -> dict[str, str]:
        headers = {CONNECTION_ID.decode(): connection_id, ENDPOINT.decode(): self.endpoint}
        if self.settings.gateway_token:
            headers[TOKEN.decode()] = self.settings.gateway_token
        return headers

    async def _post(self, event: str, headers: dict[str, str], body: bytes = b""
                    ) -> tuple[int, dict[str, str], bytes]:
        """The backend's answer to an event; BackendDown when there is none, or a 5xx."""
        assert self._client is not None
        status, answer, content = await self._client.post(PREFIX + event, headers, body)
        if status >= 500:
            raise BackendDown(f"the backend answered {status}: {content[:200]!r}")
        return status, answer, content

    # -- stations --------------------------------------------------------------------------

    async def _station(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if self.draining:
            self.metrics.handshakes.labels("503").inc()
            await deny(scope, send, retry_later("draining", "server is shutting down", 5))
            return
        if not self.admissions.take():
            self.metrics.handshakes.labels("503").inc()
            await deny(scope, send, retry_later("rate_limited", "too many new connections; "
                                                "retry later", 5))
            return
        connection_id = new_connection_id()
        offered = scope.get("subprotocols") or []
        headers = self._headers(connection_id)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        headers[STATION_PATH.decode()] = raw_path.split(b"?", 1)[0].decode("latin-1")
        headers[FORWARDED_PROTO.decode()] = "wss" if scope.get("scheme") == "wss" else "ws"
        tls = scope.get("extensions", {}).get("tls") or {}
        if tls.get("client_cert_name"):
            headers[CLIENT_CERT.decode()] = ascii_dn(tls["client_cert_name"])
        for name in (b"authorization", b"user-agent"):
            value = header(scope, name)
            if value is not None:
                headers[name.decode()] = value
        if offered:
            headers["sec-websocket-protocol"] = ", ".join(offered)
        try:
            status, answer, body = await self._post(CONNECT, headers)
        except ValueError:  # a line break in a value (a certificate's subject)
            self.metrics.handshakes.labels("400").inc()
            await deny(scope, send, Rejection(400, "bad_header", "malformed header value"))
            return
        except BackendDown as exc:
            logger.warning("connect not forwarded: %s", exc)
            self.metrics.backend_errors.labels(CONNECT).inc()
            self.metrics.handshakes.labels("503").inc()
            await deny(scope, send, retry_later("backend", "central system unreachable", 10))
            return
        self.metrics.handshakes.labels(str(status)).inc()
        if status != 200:
            kept = [(k.lower().encode(), v.encode()) for k, v in answer.items()
                    if k.lower().encode() in _PASSED_ON]
            await deny(scope, send, Rejection(status, "backend",
                                              body.decode(errors="replace").strip(), kept))
            return
        chosen = answer.get("sec-websocket-protocol")
        if not chosen or chosen not in offered:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1002, "reason": NO_SUBPROTOCOL})
            return
        await send({"type": "websocket.accept", "subprotocol": chosen})
        station = self.stations[connection_id] = _Station(connection_id, send, scope)
        await self._relay(station, receive)

    async def _relay(self, station: _Station, receive: Any) -> None:
        code, reason = 1005, ""
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    text = message.get("text")
                    if text is None:
                        await station.close(1003, "binary frames are not supported; "
                                                  "OCPP-J uses text")
                        continue
                    station.last_active_at = time.time()
                    task = asyncio.get_running_loop().create_task(self._forward(station, text))
                    station.forwards.add(task)
                    task.add_done_callback(station.forwards.discard)
                else:
                    code, reason = message.get("code", 1005), message.get("reason") or ""
                    break
        finally:
            del self.stations[station.connection_id]
            station.closing = True
            headers = self._headers(station.connection_id)
            headers[CLOSE_CODE.decode()] = str(code)
            if reason.isprintable():  # a header value cannot hold a line break
                headers[CLOSE_REASON.decode()] = reason
            try:
                await self._post(DISCONNECT, headers)
            except BackendDown as exc:
                self.metrics.backend_errors.labels(DISCONNECT).inc()
                logger.warning("disconnect of %s not forwarded: %s", station.connection_id,
                               exc)

    async def _forward(self, station: _Station, text: str) -> None:
        self.metrics.frames_in.inc()
        try:
            status, _, body = await self._post(MESSAGE, self._headers(station.connection_id),
                                               text.encode())
        except BackendDown as exc:
            self.metrics.backend_errors.labels(MESSAGE).inc()
            logger.warning("frame of %s not forwarded: %s", station.connection_id, exc)
            await self._fail(station, text)
            return
        if status == 410:
            await station.close(1008, UNKNOWN_TO_BACKEND)
        elif status == 200 and body:
            self.metrics.frames_out.inc()
            await station.text(body.decode(errors="replace"))
        elif status >= 300:
            logger.warning("the backend answered a frame of %s with %d: %r",
                           station.connection_id, status, body[:200])
            await self._fail(station, text)

    async def _fail(self, station: _Station, text: str) -> None:
        """Answer a CALL the backend could not: the station must not wait for nothing."""
        try:
            frame = frames.parse(text)
        except FrameError:
            return
        if frame[0] == frames.CALL and len(frame) > 1 and frames.valid_id(frame[1]):
            await station.text(frames.error(frame[1], "InternalError",
                                            "central system unavailable", {}))

    # -- the @connections API --------------------------------------------------------------

    async def _connections(self, scope: dict[str, Any], receive: Any, send: Any,
                           connection_id: str) -> None:
        if not token_ok(scope, self.settings.gateway_token):
            await respond(send, 403, b'{"message":"Forbidden"}', b"application/json")
            return
        station = self.stations.get(connection_id)
        method = scope["method"]
        if method not in ("POST", "DELETE", "GET"):
            await respond(send, 405, b'{"message":"Method not allowed"}', b"application/json",
                          headers=[(b"allow", b"POST, DELETE, GET")])
        elif station is None or station.closing:
            await respond(send, 410, b'{"message":"Gone"}', b"application/json")
        elif method == "GET":
            await respond(send, 200, orjson.dumps(station.info()), b"application/json")
        elif method == "DELETE":
            code, reason = close_frame(scope)
            await station.close(code, reason)
            await respond(send, 204, b"")
        else:
            await self._post_to(station, receive, send)

    async def _post_to(self, station: _Station, receive: Any, send: Any) -> None:
        body = await read_body(receive, self.settings.max_frame_size)
        if body is None:
            await respond(send, 413, b'{"message":"Payload too large"}', b"application/json")
            return
        try:
            text = body.decode()
        except UnicodeDecodeError:
            await respond(send, 400, b'{"message":"the frame is not UTF-8"}',
                          b"application/json")
            return
        if not await station.text(text):
            await respond(send, 410, b'{"message":"Gone"}', b"application/json")
            return
        self.metrics.frames_out.inc()
        await respond(send, 200, b"")


def ascii_dn(subject: str) -> str:
    """A DN fit for a header: characters beyond ASCII as RFC 4514 hex escapes of their
    UTF-8 bytes (`\\C3\\BC`), which csms reads back."""
    return "".join(c if ord(c) < 128 else "".join(f"\\{b:02X}" for b in c.encode())
                   for c in subject)


def close_frame(scope: dict[str, Any]) -> tuple[int, str]:
    """The close code and reason a DELETE asks for: 1000 unless a valid one is named."""
    try:
        code = int(header(scope, CLOSE_CODE) or 1000)
    except ValueError:
        code = 1000
    if not (code in (1000, 1001, 1008, 1011, 1012) or 3000 <= code <= 4999):
        code = 1000
    reason = (header(scope, CLOSE_REASON) or "").encode("latin-1")[:123].decode(
        "utf-8", errors="ignore")
    return code, reason


def default_endpoint(settings: GatewaySettings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else socket.gethostname()
    scheme = "https" if settings.ssl_certfile else "http"
    return f"{scheme}://{host}:{settings.internal_port or settings.port}"


def gateway_from_env() -> Gateway:
    """The factory `csms gateway` hands to uvicorn."""
    return Gateway(GatewaySettings.from_env())
