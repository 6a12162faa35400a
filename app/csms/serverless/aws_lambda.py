"""csms as an AWS Lambda function behind API Gateway (`pip install 'csms[lambda]'`).

The function's handler is `csms.serverless.aws_lambda.handler`. It serves:

- the WebSocket API's routes: `$connect`, `$default` and `$disconnect` invoke it with the
  stations' events, which become the gateway contract's requests (`contract`); the
  `$default` route needs a route response, so that the reply frame goes back to the station;
- the REST API (`/api/v1`, `/docs`), from an HTTP API or REST API in front of the same
  function, through Mangum's own adapters.

API Gateway WebSocket URLs have no path of their own, so the station's identity comes from
the `station` query parameter (stations configured with `wss://…/{stage}?station=` append
`/{id}` to it) or from an `X-Station-Path` header set by a proxy in front.

Lambda freezes a function between invocations: the app starts once per container, and each
invocation finishes what it started (queued-command deliveries, state written behind)
before it returns.
"""

import asyncio
import base64
import os
from typing import Any
from urllib.parse import quote

from mangum import Mangum
from mangum.protocols import LifespanCycle
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Response

from csms.serverless.contract import (
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
    SIGV4,
    STATION_PATH,
    TOKEN,
)

_EVENTS = {"CONNECT": CONNECT, "MESSAGE": MESSAGE, "DISCONNECT": DISCONNECT}
# The station's handshake headers the connect request passes on.
_STATION_HEADERS = ("authorization", "sec-websocket-protocol", "user-agent", "x-station-path")


class WebSocketEvents:
    """A Mangum handler for API Gateway WebSocket events: each one a POST to `/gateway/`."""

    @classmethod
    def infer(cls, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> bool:
        context_ = event.get("requestContext") or {}
        return "connectionId" in context_ and context_.get("eventType") in _EVENTS

    def __init__(self, event: LambdaEvent, context: LambdaContext,
                 config: LambdaConfig) -> None:
        self.event = event
        self.kind = _EVENTS[event["requestContext"]["eventType"]]

    @property
    def body(self) -> bytes:
        body = self.event.get("body") or ""
        if self.event.get("isBase64Encoded"):
            return base64.b64decode(body)
        return body.encode() if isinstance(body, str) else bytes(body)

    @property
    def scope(self) -> dict[str, Any]:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._headers().items()]
        context = self.event["requestContext"]
        source = (context.get("identity") or {}).get("sourceIp") or "0.0.0.0"
        path = PREFIX + self.kind
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1", "method": "POST", "scheme": "https", "path": path,
                "raw_path": path.encode(), "root_path": "", "query_string": b"",
                "headers": headers, "client": (source, 0), "server": ("lambda", 443),
                "aws.event": self.event}

    def _headers(self) -> dict[str, str]:
        context = self.event["requestContext"]
        headers = {CONNECTION_ID.decode(): context["connectionId"],
                   ENDPOINT.decode(): endpoint(context), SIGNING.decode(): SIGV4}
        token = os.environ.get("CSMS_GATEWAY_TOKEN")
        if token:  # the function is its own gateway: it passes the check it would make
            headers[TOKEN.decode()] = token
        if self.kind == CONNECT:
            given = {k.lower(): v for k, v in (self.event.get("headers") or {}).items()}
            headers.update({k: v for k, v in given.items() if k in _STATION_HEADERS})
            headers[STATION_PATH.decode()] = station_path(self.event, given)
            headers[FORWARDED_PROTO.decode()] = "wss"  # API Gateway speaks only wss
        elif self.kind == DISCONNECT:
            headers[CLOSE_CODE.decode()] = str(context.get("disconnectStatusCode") or 1005)
            headers[CLOSE_REASON.decode()] = str(context.get("disconnectReason") or "")
        return headers

    def __call__(self, response: Response) -> dict[str, Any]:
        """The backend's answer as API Gateway wants it: the chosen subprotocol of an
        admitted connect, a refusal's status, the reply frame of a message."""
        status = response["status"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in response["headers"]
                   if k.lower() in (b"sec-websocket-protocol", b"www-authenticate",
                                    b"retry-after")}
        answer: dict[str, Any] = {"statusCode": 200 if status == 204 else status}
        if headers:
            answer["headers"] = headers
        if self.kind == MESSAGE and status == 200 and response["body"]:
            answer["body"] = response["body"].decode()
        elif status >= 300 and response["body"]:
            answer["body"] = response["body"].decode(errors="replace")
        return answer


def endpoint(context: dict[str, Any]) -> str:
    """Where the @connections API is: the execute-api URL of the API and stage (custom
    domains do not serve it), unless CSMS_GATEWAY_ENDPOINT says otherwise."""
    configured = os.environ.get("CSMS_GATEWAY_ENDPOINT")
    if configured:
        return configured
    region = os.environ.get("AWS_REGION")
    host = f"{context['apiId']}.execute-api.{region}.amazonaws.com" if region and \
        context.get("apiId") else context["domainName"]
    return f"https://{host}/{context['stage']}"


def station_path(event: dict[str, Any], headers: dict[str, str]) -> str:
    """`/ocpp/{station_id}`: from a proxy's X-Station-Path, or from `?station=`."""
    if headers.get("x-station-path"):
        return headers["x-station-path"]
    query = event.get("queryStringParameters") or {}
    station = str(query.get("station") or "").lstrip("/")
    return "/ocpp/" + quote(station, safe="")


class Handler:
    """The Lambda entry point: the app started once per container, Mangum per event."""

    def __init__(self, app: Any = None) -> None:
        self._app = app
        self._mangum: Mangum | None = None
        self._lifespan: LifespanCycle | None = None

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        if self._mangum is None:
            if self._app is None:
                from csms.web.app import create_app

                self._app = create_app()
            self._mangum = Mangum(self._app, lifespan="off", custom_handlers=[WebSocketEvents])
            # Started here, never shut down: Lambda freezes the container between events
            # and ends it without notice; what is buffered is written before each return.
            self._lifespan = LifespanCycle(self._app, "on")
            self._lifespan.__enter__()
        answer = self._mangum(event, context)
        settle = getattr(self._app, "settle", None)
        if settle is not None:
            asyncio.get_event_loop().run_until_complete(settle())
        return answer

    def close(self) -> None:
        """Shut the app down (tests; Lambda itself never does)."""
        if self._lifespan is not None:
            self._lifespan.__exit__(None, None, None)
            self._lifespan = None
        self._mangum = None


handler = Handler()
