"""Bearer tokens for the REST API: several at once, so a token can be rotated without
downtime (add the new one, move the clients, remove the old one).

Tokens come from `CSMS_API_TOKEN` (comma-separated) and from `CSMS_API_TOKEN_FILE` (one
per line), the file being re-read when it changes, as a mounted Kubernetes Secret does.
Only SHA-256 digests are kept, and a presented token is compared with every one of them in
constant time: neither its length nor which token matched shows in the timing.
"""

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterable

from csms.observability.redaction import install

logger = logging.getLogger("csms.api")
RECHECK = 1.0  # seconds between looks at the token file


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def read_token_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [t.strip() for t in f if t.strip()]


class ApiTokens:
    def __init__(self, inline: Iterable[str] = (), file: str | None = None) -> None:
        self._inline = [_digest(t) for t in inline]
        self._file = file
        self._from_file: list[bytes] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.required = bool(self._inline) or file is not None
        if file is not None:
            self._reload()

    def _reload(self) -> None:
        assert self._file is not None
        try:
            st = os.stat(self._file)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            tokens = read_token_file(self._file)
        except OSError as exc:
            # Keep the tokens in force: a Secret being swapped may be missing for a moment.
            logger.warning("API token file unreadable, previous tokens kept: %s",
                           exc.strerror or exc)
            return
        self._stamp = stamp
        self._from_file = [_digest(t) for t in tokens]
        install(*tokens)  # never logged, whoever meets one
        logger.info("API token file read: %d tokens", len(tokens))
        if not tokens and not self._inline:
            logger.warning("API token file has no tokens: every API request is refused")

    def _digests(self) -> Iterable[bytes]:
        if self._file is not None:
            now = time.monotonic()
            if now - self._checked >= RECHECK:
                self._checked = now
                self._reload()
        return [*self._inline, *self._from_file]

    def accepts(self, token: str) -> bool:
        given = _digest(token)
        matched = False
        for known in self._digests():  # no early exit: every token costs the same
            matched |= hmac.compare_digest(given, known)
        return matched

    def accepts_header(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.accepts(token.strip())
