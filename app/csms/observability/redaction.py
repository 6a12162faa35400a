"""Secrets never reach a log line, whoever logs it.

At debug level the libraries under csms log what they see: websockets prints every
handshake header (`Authorization: Basic ...` included), kopf prints resource bodies, and
an exception can carry a URL with its password. So redaction sits where every record of
the process is made: `install()` replaces the log record factory, and each record's message
and formatted traceback pass through `Redactor.redact` whatever logger or handler they take.
It removes

- the value of any `Authorization` header, in the forms the libraries print it;
- HTTP `Basic`/`Bearer` credentials standing on their own;
- the password of a URL (`rediss://user:password@host`);
- `password=...`, `token=...` and quoted `"password": "..."` pairs;
- the exact secrets csms was given (API tokens, the Redis password).

Only emitted records are redacted (a record below the level is never formatted), so the cost
is nil on the hot path at the usual levels.
"""

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"

_HEADER = re.compile(
    r"""((?:proxy-)?authorization['"]?\s*[:=,]\s*\(?b?['"]?)([^'"\r\n]*)""", re.IGNORECASE)
_SCHEME = re.compile(r"^\s*([A-Za-z][\w-]*)\s+\S")
# A credential after its scheme: base64 or a token, with at least one character that no
# lowercase word has, so that prose ("Basic credentials required") is left alone, and not
# an auth-param (`Basic realm="csms"`).
_CREDENTIAL = re.compile(
    r"\b(Basic|Bearer|Digest)\s+(?![A-Za-z][\w-]*=\")(?=[\w.~+/=:-]*[A-Z0-9+/=:._~-])"
    r"[\w.~+/=:-]{6,}")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)(@)", re.IGNORECASE)
_PAIR = re.compile(
    r"""\b((?:password|passwd|secret|token|api[_-]?(?:key|token))=)([^\s&'",;]+)"""
    r"""|(['"](?:password|passwd|secret|token|api[_-]?(?:key|token))['"]\s*:\s*['"])"""
    r"""([^'"]*)""", re.IGNORECASE)


def _header(match: re.Match[str]) -> str:
    value = match.group(2)
    scheme = _SCHEME.match(value)
    kept = f"{scheme.group(1)} " if scheme else ""
    return f"{match.group(1)}{kept}{REDACTED}" if value else match.group(0)


def _pair(match: re.Match[str]) -> str:
    return f"{match.group(1) or match.group(3)}{REDACTED}"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._exact: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Exact strings to remove wherever they appear (too short ones would mangle logs)."""
        fresh = {s for s in secrets if s and len(s) >= 4} - self._secrets
        if fresh:
            self._secrets |= fresh
            longest_first = sorted(self._secrets, key=len, reverse=True)
            self._exact = re.compile("|".join(re.escape(s) for s in longest_first))

    def redact(self, text: str) -> str:
        text = _HEADER.sub(_header, text)
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}\3", text)
        text = _PAIR.sub(_pair, text)
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        return text


REDACTOR = Redactor()  # one per process: the record factory is process-wide too


class RedactedRecord(logging.LogRecord):
    """A record whose message and traceback text are redacted when a handler formats them."""

    def getMessage(self) -> str:
        return REDACTOR.redact(super().getMessage())

    @property
    def exc_text(self) -> str | None:
        return self.__dict__.get("_exc_text")

    @exc_text.setter
    def exc_text(self, value: str | None) -> None:
        # Formatters cache the formatted traceback here before they print it.
        self.__dict__["_exc_text"] = None if value is None else REDACTOR.redact(value)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = RedactedRecord(*args, **kwargs)
    if record.stack_info:
        record.stack_info = REDACTOR.redact(record.stack_info)
    return record


def url_passwords(url: str | None) -> tuple[str, ...]:
    """The password of a URL such as `rediss://user:password@host:6380/0`, as written and
    percent-decoded."""
    password = urlsplit(url).password if url else None
    return tuple(dict.fromkeys((password, unquote(password)))) if password else ()


def install(*secrets: str | None) -> None:
    """Redact every log record of this process from now on, these secrets included."""
    REDACTOR.add(*(s for s in secrets if s))
    if logging.getLogRecordFactory() is not _factory:
        logging.setLogRecordFactory(_factory)
