"""Client certificates for security profile 3: where a connection's verified certificate
subject comes from, and the station identity it names.

OCPP security profile 3 identifies a station by its TLS client certificate, whose subject
commonName is the station's identity. The subject reaches csms one of two ways:

- csms terminates TLS itself (`CSMS_SSL_CA_CERTS`): uvicorn does not fill the ASGI TLS
  extension, so csms's own protocols add `scope["extensions"]["tls"]` with the verified
  peer certificate's subject as an RFC 4514 string;
- a TLS-terminating proxy verifies the certificate and passes its subject (an RFC 4514 or
  OpenSSL one-line DN, or a bare commonName) in `CSMS_CLIENT_CERT_HEADER`.

A server with neither cannot verify a certificate, and refuses profile-3 stations.
"""

import dataclasses
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# RFC 4514 short names of the attributes Python's ssl module reports by their long names.
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
          "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_dn(subject: Any) -> str:
    """`getpeercert()["subject"]` as RFC 4514 text, most specific RDN first."""
    rdns = ["+".join(f"{_SHORT.get(name, name)}={_escape(value)}" for name, value in rdn)
            for rdn in subject]
    return ",".join(reversed(rdns))


def tls_extension(transport: Any) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection, None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    # With CERT_OPTIONAL a certificate that fails verification fails the handshake, so a
    # certificate seen here was verified against CSMS_SSL_CA_CERTS.
    cert = ssl_object.getpeercert()
    return {
        "server_cert": None,
        "client_cert_chain": [],  # not kept: a PEM per connection costs memory, nobody reads it
        "client_cert_name": subject_dn(cert["subject"]) if cert else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the ASGI TLS extension in each request's scope."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._tls = tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


def _unescape(text: str) -> str:
    """RFC 4514 value escapes: `\\,` for a special character, `\\C3\\A9` for UTF-8 bytes."""
    raw = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            pair = text[i + 1:i + 3]
            if len(pair) == 2 and all(h in "0123456789abcdefABCDEF" for h in pair):
                raw.append(int(pair, 16))
                i += 3
                continue
            c = text[i + 1]
            i += 1
        raw += c.encode()
        i += 1
    return raw.decode("utf-8")


def _trim(value: str) -> str:
    """Strip the spaces around a value, but not an escaped trailing one (`\\ `)."""
    value = value.lstrip()
    trimmed = value.rstrip()
    backslashes = len(trimmed) - len(trimmed.rstrip("\\"))
    if backslashes % 2 and len(trimmed) < len(value):
        trimmed += " "
    return trimmed


def _split(text: str, separators: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            current.append(text[i:i + 2])
            i += 2
            continue
        if c in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def common_name(subject: str) -> str | None:
    """The one commonName of a subject DN (RFC 4514, or OpenSSL's `/C=DE/CN=x`), or the
    value itself when it is a bare name; None when there is none, or more than one."""
    if "=" not in subject:
        return subject.strip() or None
    if subject.startswith("/"):
        attributes = [part for part in subject[1:].split("/") if part]
    else:
        attributes = [a for rdn in _split(subject, ",;") for a in _split(rdn, "+")]
    names = []
    for attribute in attributes:
        key, sep, value = attribute.partition("=")
        if not sep:
            return None  # not a DN after all: refuse rather than guess
        if key.strip().upper() in ("CN", "COMMONNAME", "2.5.4.3"):
            try:
                names.append(_unescape(_trim(value)))
            except UnicodeDecodeError:
                return None
    return names[0] if len(names) == 1 else None


@dataclasses.dataclass(frozen=True, slots=True)
class ClientCertificates:
    """How this server learns a connection's verified certificate subject."""

    direct: bool  # csms terminates TLS and asks for client certificates
    header: bytes | None  # the proxy's header, lower-case

    @property
    def verifiable(self) -> bool:
        return self.direct or self.header is not None

    def subject(self, scope: dict[str, Any]) -> str | None:
        tls = scope.get("extensions", {}).get("tls")
        if tls is not None and tls.get("client_cert_name"):
            return str(tls["client_cert_name"])
        if self.header is not None:
            for key, value in scope.get("headers", []):
                if key == self.header:
                    return str(value.decode("latin-1"))
        return None
