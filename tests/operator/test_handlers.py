"""The operator keeps an unchanged password's hash, so the registry entry does not change."""

import kopf

from csms.state.credentials import hash_password
from csms.state.registry import StationEntry
from csms_operator.handlers import Hashes, known_hash


async def test_an_unchanged_password_keeps_its_hash_also_after_a_restart() -> None:
    stored = hash_password("sixteen-chars-pass", iterations=1000)
    previous = StationEntry("cp", password_hash=stored)
    memo = kopf.Memo()
    memo.hashes = Hashes()  # a fresh operator process: nothing remembered
    assert await known_hash(memo, "cp", "sixteen-chars-pass", previous) == stored
    assert await known_hash(memo, "cp", "another-password-1", previous) is None
    assert await known_hash(memo, "cp", None, previous) is None
    memo.hashes.remember("cp", "another-password-1", "pbkdf2_sha256$1$x$y")
    assert await known_hash(memo, "cp", "another-password-1", None) == "pbkdf2_sha256$1$x$y"
