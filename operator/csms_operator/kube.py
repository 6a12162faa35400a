"""The Kubernetes API calls the operator makes outside kopf's own machinery: read a Secret,
post an Event, write a ChargingStation's status.

On aiohttp (which kopf itself uses) with kopf's own login (a service account in the
cluster, a kubeconfig elsewhere): the official client library would add 128 MB to the
image for these three calls.
"""

import base64
import contextlib
import datetime
import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

import aiohttp
import kopf


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _pem(data: str | bytes) -> bytes:
    """Kubeconfig's *-data fields are base64 of PEM; kopf passes them on as they are."""
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


@contextlib.contextmanager
def _as_file(data: str | bytes | None, path: Any) -> Iterator[str | None]:
    """A path for ssl, which reads certificates and keys from files only."""
    if data is None:
        yield os.fsdecode(path) if path else None
        return
    with tempfile.NamedTemporaryFile(suffix=".pem") as f:
        f.write(_pem(data))
        f.flush()
        yield f.name


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_pem(info.ca_data).decode())
    with _as_file(info.certificate_data, info.certificate_path) as cert, \
            _as_file(info.private_key_data, info.private_key_path) as key:
        if cert:
            context.load_cert_chain(cert, key)
    return context


def credentials() -> tuple[kopf.ConnectionInfo, str] | None:
    """How the operator logs in, kopf's way, and where that came from; None: no way."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings)
    if info is not None:
        return info, "the pod's service account"
    info = kopf.login_with_kubeconfig(settings=settings)
    if info is not None:
        return info, os.environ.get("KUBECONFIG") or "~/.kube/config"
    return None


def unreachable(server: str, timeout: float = 5.0) -> str | None:
    """Why a TCP connection to the API server fails, or None when it opens."""
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(server)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout).close()
    except OSError as exc:
        return str(exc) or type(exc).__name__
    return None


class KubeApi:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self._server = info.server.rstrip("/")
        self._headers = {"Accept": "application/json", **info.as_http_headers()}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context(info)),
            timeout=aiohttp.ClientTimeout(total=30))

    @classmethod
    def login(cls, settings: kopf.OperatorSettings) -> "KubeApi":
        info = (kopf.login_with_service_account(settings=settings)
                or kopf.login_with_kubeconfig(settings=settings))
        if info is None:
            raise kopf.PermanentError("no service account and no kubeconfig to log in with")
        return cls(info)

    async def close(self) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None,
                    content_type: str = "application/json") -> dict[str, Any]:
        async with self._session.request(
                method, self._server + path, json=body,
                headers={**self._headers, "Content-Type": content_type}) as response:
            if response.status >= 400:
                raise ApiError(response.status, (await response.text())[:500])
            result: dict[str, Any] = await response.json(content_type=None)
            return result

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def post_event(self, involved: dict[str, Any], kind: str, reason: str,
                         message: str, component: str) -> None:
        moment = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved["namespace"]
        await self._call("POST", f"/api/v1/namespaces/{namespace}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": involved, "type": kind, "reason": reason, "message": message,
            "count": 1, "firstTimestamp": moment, "lastTimestamp": moment,
            "source": {"component": component}, "reportingComponent": component})

    async def patch_status(self, group: str, version: str, plural: str, namespace: str,
                           name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the resource's; False when the resource is gone."""
        try:
            await self._call("PATCH", f"/apis/{group}/{version}/namespaces/{namespace}/"
                             f"{plural}/{name}/status", {"status": status},
                             "application/merge-patch+json")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
