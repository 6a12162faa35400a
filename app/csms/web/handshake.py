"""Deciding a station's connection before the websocket upgrade is accepted.

Each refusal is an HTTP status given before the upgrade: 400 bad station id, 404 unknown or
disabled station, 401 missing or wrong credentials or client certificate, 403 TLS required by
the security profile (or a profile-3 station on a server that cannot verify certificates),
503 with a jittered Retry-After while draining, over the admission rate, or while the
registry (Redis) is unreachable.
"""

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from csms.protocol.versions import SUBPROTOCOLS, VERSIONS
from csms.services import Services
from csms.state.admission import jittered
from csms.state.credentials import VerifiedCache
from csms.state.errors import Unavailable
from csms.state.registry import StationEntry
from csms.web.tls import ClientCertificates, common_name

NO_CERTIFICATES = ClientCertificates(direct=False, header=None)

MAX_ID_LENGTH = 48  # OCPP 2.0.1 identity is string[48]
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class Rejection(Exception):
    def __init__(self, status: int, reason: str, message: str,
                 headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # the metric label
        self.message = message
        self.headers = list(headers)


def station_id(scope: dict[str, Any]) -> str:
    """The last path segment, percent-decoded; 1-48 characters, no ':'."""
    raw = scope.get("raw_path") or scope["path"].encode()
    segment = raw.split(b"?", 1)[0].rstrip(b"/").rsplit(b"/", 1)[-1]
    try:
        if _BAD_ESCAPE.search(segment):
            raise ValueError("bad percent escape")
        value = unquote(segment.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise Rejection(400, "bad_id", "station id is not valid percent-encoded UTF-8") from None
    if not 0 < len(value) <= MAX_ID_LENGTH or ":" in value or "/" in value:
        raise Rejection(400, "bad_id", "station id must be 1-48 characters without ':' or '/'")
    if not value.isprintable():  # control characters would forge log lines and metrics
        raise Rejection(400, "bad_id", "station id has control characters")
    return value


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def basic_credentials(scope: dict[str, Any]) -> tuple[str, str] | None:
    value = header(scope, b"authorization")
    if value is None or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def retry_later(reason: str, message: str, seconds: float) -> Rejection:
    return Rejection(503, reason, message, [(b"retry-after", str(jittered(seconds)).encode())])


_UNAUTHORIZED = [(b"www-authenticate", b'Basic realm="csms", charset="UTF-8"')]


async def admit(
    services: Services, scope: dict[str, Any], sid: str, cache: VerifiedCache,
    certificates: ClientCertificates = NO_CERTIFICATES,
) -> StationEntry:
    try:
        entry = await services.entry(sid)
    except Unavailable:
        raise retry_later("unavailable", "station registry unreachable", 10) from None
    if entry is None:
        raise Rejection(404, "unknown", f"station {sid!r} is not registered")
    if not entry.enabled:
        raise Rejection(404, "disabled", f"station {sid!r} is disabled")
    secure = scope.get("scheme") in ("wss", "https")
    if entry.security_profile >= 2 and not secure:
        raise Rejection(403, "tls_required",
                        f"security profile {entry.security_profile} requires TLS")
    if entry.security_profile == 3:
        check_certificate(scope, sid, certificates)
    if entry.password_hash is not None:
        creds = basic_credentials(scope)
        if creds is None:
            raise Rejection(401, "no_credentials", "HTTP Basic credentials required",
                            _UNAUTHORIZED)
        user, password = creds
        if user != sid or not cache.verify(sid, password, entry.password_hash):
            raise Rejection(401, "bad_credentials", "wrong station credentials", _UNAUTHORIZED)
    return entry


def check_certificate(scope: dict[str, Any], sid: str, certificates: ClientCertificates) -> None:
    """Security profile 3: a verified client certificate whose commonName is the station id,
    whether csms or a proxy in front of it verified it."""
    if not certificates.verifiable:
        raise Rejection(403, "cert_unverifiable",
                        "security profile 3: this server cannot verify client certificates")
    subject = certificates.subject(scope)
    if subject is None:
        raise Rejection(401, "no_certificate", "security profile 3 requires a client certificate")
    if common_name(subject) != sid:
        raise Rejection(401, "bad_certificate", "client certificate does not name station")


def choose_version(offered: Iterable[str], entry: StationEntry) -> str | None:
    """The server's most preferred version that the station offered and may use."""
    wanted = {SUBPROTOCOLS[p] for p in offered if p in SUBPROTOCOLS}
    for version in VERSIONS:
        if version in wanted and version in entry.versions:
            return version
    return None
