"""API bearer tokens: several at once, from the environment and a file re-read on change."""

import os
from pathlib import Path

import pytest

from csms.web import tokens as tokens_module
from csms.web.tokens import ApiTokens

OLD, NEW, OTHER = "old-token-0123456789", "new-token-0123456789", "env-token-0123456789"


@pytest.fixture(autouse=True)
def no_recheck_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_module, "RECHECK", 0.0)


def test_no_tokens_means_no_auth_and_any_token_means_auth() -> None:
    assert not ApiTokens().required
    tokens = ApiTokens([OLD, NEW])
    assert tokens.required
    assert tokens.accepts(OLD) and tokens.accepts(NEW)
    assert not tokens.accepts("") and not tokens.accepts(OLD[:-1]) and not tokens.accepts(
        OLD + "x")


@pytest.mark.parametrize(("header", "accepted"), [
    (f"Bearer {OLD}", True), (f"bearer {OLD}", True), (f"Bearer  {OLD} ", True),
    (OLD, False), (f"Basic {OLD}", False), (f"Bearer {NEW}", False), ("", False), (None, False),
])
def test_only_a_bearer_header_with_a_known_token_passes(header: str | None,
                                                       accepted: bool) -> None:
    assert ApiTokens([OLD]).accepts_header(header) is accepted


def test_the_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{OLD}\n")
    tokens = ApiTokens([OTHER], str(path))
    assert tokens.accepts(OLD) and tokens.accepts(OTHER) and not tokens.accepts(NEW)
    path.write_text(f"{OLD}\n{NEW}\n")  # rotation, step 1: both
    assert tokens.accepts(NEW) and tokens.accepts(OLD)
    path.write_text(f"\n{NEW}\n\n")  # step 2: the old one is gone
    assert tokens.accepts(NEW) and not tokens.accepts(OLD) and tokens.accepts(OTHER)


def test_a_vanished_token_file_keeps_the_tokens_in_force(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{OLD}\n")
    tokens = ApiTokens((), str(path))
    os.remove(path)  # a Secret being swapped
    assert tokens.accepts(OLD)


def test_an_empty_token_file_refuses_everything(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("\n")
    tokens = ApiTokens((), str(path))
    assert tokens.required and not tokens.accepts("") and not tokens.accepts(OLD)


def test_a_token_read_from_the_file_is_never_logged(tmp_path: Path) -> None:
    from csms.observability.redaction import REDACTOR

    path = tmp_path / "tokens"
    secret = "file-only-token-Kx82mQ"
    path.write_text(secret + "\n")
    ApiTokens((), str(path))
    assert secret not in REDACTOR.redact(f"a message with {secret} in it")
