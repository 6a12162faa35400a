"""The HTTP contract between a websocket gateway and gateway-mode backends.

Gateway to backend, one POST per event (the API Gateway routes in brackets):

- `/gateway/connect` ($connect): `X-Connection-Id`, `X-Gateway-Endpoint`, `X-Station-Path`
  (`/ocpp/{station_id}`), `X-Forwarded-Proto` (`wss` when the station came over TLS),
  `X-Client-Cert-Subject` (when the gateway verified a client certificate) and the station's
  own `Authorization` and `Sec-WebSocket-Protocol`. Answered 200 with the chosen
  `Sec-WebSocket-Protocol` (admitted), 200 without one (no agreed subprotocol: the gateway
  completes the handshake and closes 1002, as OCPP-J says), or the refusal the websocket
  endpoint would give (400, 401 with `WWW-Authenticate`, 403, 404, 503 with `Retry-After`).
- `/gateway/message` ($default): `X-Connection-Id`, `X-Gateway-Endpoint`; the frame is the
  body. Answered 200 with the reply frame as the body, 204 when there is nothing to send,
  410 when the backend does not know the connection (it has asked the gateway to close it).
- `/gateway/disconnect` ($disconnect): `X-Connection-Id`, `X-Close-Code`, `X-Close-Reason`;
  answered 204.

Backend to gateway, API Gateway's management API, at the endpoint the events name:
`POST {endpoint}/@connections/{id}` sends the body as a text frame (410 when the connection
is gone), `DELETE` closes it (`X-Close-Code` and `X-Close-Reason` choose the close frame on
`csms gateway`; API Gateway ignores them), `GET` describes it.

With `CSMS_GATEWAY_TOKEN` set, every request both ways carries it in `X-Gateway-Token`, and
one without it is refused 401. Endpoints marked `X-Gateway-Signing: aws-sigv4` (API Gateway)
are called with AWS Signature V4 instead.
"""

import dataclasses
import hmac
from typing import Any
from urllib.parse import quote

PREFIX = "/gateway/"
CONNECT, MESSAGE, DISCONNECT = "connect", "message", "disconnect"
CONNECTIONS = "/@connections/"

CONNECTION_ID = b"x-connection-id"
ENDPOINT = b"x-gateway-endpoint"
SIGNING = b"x-gateway-signing"
STATION_PATH = b"x-station-path"
FORWARDED_PROTO = b"x-forwarded-proto"
CLIENT_CERT = b"x-client-cert-subject"
TOKEN = b"x-gateway-token"
CLOSE_CODE = b"x-close-code"
CLOSE_REASON = b"x-close-reason"

SIGV4 = "aws-sigv4"
MAX_CONNECTION_ID = 128  # API Gateway's are 16 characters; ours 22


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """Where a station's socket is: which gateway, which of its connections."""

    endpoint: str  # the @connections API's base URL, e.g. https://abc.execute-api.../prod
    connection_id: str
    signing: str = ""  # "aws-sigv4" for API Gateway; empty: the gateway token, if any

    def url(self) -> str:
        return f"{self.endpoint.rstrip('/')}{CONNECTIONS}{quote(self.connection_id, safe='=+')}"


def valid_connection_id(value: str) -> bool:
    """Printable and without spaces: a Redis key part, and a URL segment once quoted."""
    return 0 < len(value) <= MAX_CONNECTION_ID and value.isprintable() and " " not in value


def token_ok(scope: dict[str, Any], token: str | None) -> bool:
    """The request carries the shared token, or none is required."""
    if not token:
        return True
    given = next((v for k, v in scope.get("headers", []) if k == TOKEN), b"")
    return hmac.compare_digest(given, token.encode())
