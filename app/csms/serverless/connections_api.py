"""The backend's client of a gateway's `@connections` API: send a frame, close, describe.

API Gateway's management API and `csms gateway` answer alike: 200 (204) done, 410 the
connection is gone. API Gateway requires AWS Signature V4 (`execute-api:ManageConnections`);
`csms gateway` the shared token, when one is set.
"""

import logging
import os
import re
from typing import Any

import aiohttp
import orjson

from csms.serverless.contract import CLOSE_CODE, CLOSE_REASON, SIGV4, TOKEN, Link

logger = logging.getLogger("csms.gateway")

TIMEOUT = 10.0  # seconds for one request to the gateway
_REGION = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class Gone(Exception):
    """The connection no longer exists (410): the station has gone."""


class GatewayError(Exception):
    """The gateway refused the request or could not be reached."""


class ConnectionsApi:
    def __init__(self, token: str | None = None) -> None:
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._aws: Any = None  # botocore credentials (refreshed by botocore), once needed

    async def start(self) -> None:
        # One pool for every gateway; kept-alive connections are what makes a call cheap.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT), skip_auto_headers=["User-Agent"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, link: Link, text: str) -> None:
        if await self._request("POST", link, text.encode()) is None:
            raise Gone(f"connection {link.connection_id} is gone")

    async def delete(self, link: Link, code: int = 1000, reason: str = "") -> bool:
        """Close the connection; False when it was gone already."""
        headers = {CLOSE_CODE.decode(): str(code), CLOSE_REASON.decode(): reason}
        return await self._request("DELETE", link, b"", headers) is not None

    async def info(self, link: Link) -> dict[str, Any] | None:
        """API Gateway's GetConnection: connectedAt, lastActiveAt, identity; None if gone."""
        body = await self._request("GET", link, b"")
        return None if body is None else dict(orjson.loads(body))

    async def _request(self, method: str, link: Link, body: bytes,
                       headers: dict[str, str] | None = None) -> bytes | None:
        """The answer's body; None when the connection is gone (410), GatewayError when
        the gateway refuses or cannot be reached."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = link.url()
        headers = dict(headers or {})
        if link.signing == SIGV4:
            if self._aws is None:
                self._aws = aws_credentials()
            headers.update(sigv4_headers(self._aws, method, url, body))
        elif self._token:
            headers[TOKEN.decode()] = self._token
        try:
            async with self._session.request(method, url, data=body or None,
                                             headers=headers) as response:
                status, answer = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"the gateway is unreachable: {type(exc).__name__} {exc}"
                               ) from None
        if status == 410:
            return None
        if status >= 300:
            raise GatewayError(f"the gateway answered {status}: {answer[:200]!r}")
        return answer


def aws_credentials() -> Any:
    """The function's own AWS credentials (its role's, from the environment)."""
    try:
        from botocore.session import get_session
    except ImportError:
        raise GatewayError("signing for API Gateway needs botocore: pip install "
                           "'csms[lambda]'") from None
    credentials = get_session().get_credentials()
    if credentials is None:
        raise GatewayError("no AWS credentials to sign the request to API Gateway with")
    return credentials


def sigv4_headers(credentials: Any, method: str, url: str, body: bytes) -> dict[str, str]:
    """AWS Signature V4 headers for API Gateway's management API (the role needs
    `execute-api:ManageConnections` on the API's `@connections` resources)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    found = _REGION.search(url)
    region = os.environ.get("AWS_REGION") or (found.group(1) if found else "us-east-1")
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return {k: v for k, v in request.headers.items() if isinstance(v, str)}
