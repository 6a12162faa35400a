"""Station passwords are kept only as salted PBKDF2 hashes, never in plain text."""

import base64
import hashlib
import hmac
import os

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 100_000


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join([ALGORITHM, str(iterations), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations, salt, digest = encoded.split("$")
        if algorithm != ALGORITHM:
            return False
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


class VerifiedCache:
    """Remembers a keyed digest of the last password that verified, per station.

    A slow hash per handshake would make a reconnect storm cost minutes of CPU; the cache
    makes a repeat of the same credentials one HMAC. It lives in this process only, keyed by
    a random per-process secret, and is dropped when the stored hash changes.
    """

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._seen: dict[str, tuple[str, bytes]] = {}

    def verify(self, station_id: str, password: str, encoded: str) -> bool:
        tag = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        seen = self._seen.get(station_id)
        if seen is not None and seen[0] == encoded and hmac.compare_digest(seen[1], tag):
            return True
        if verify_password(password, encoded):
            self._seen[station_id] = (encoded, tag)
            return True
        return False
