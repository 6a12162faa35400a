"""What a newcomer meets in the first hour (issue 12): the exceptions the README lists are
importable from `csms`, `--help` shows the defaults, a server that would refuse everyone
says so, `/metrics` carries no `*_created` clutter, and the licence is declared."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import httpx

import csms
from tests.e2e.conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]


def test_the_exceptions_the_readme_lists_are_importable_from_csms() -> None:
    for name in ("CallErrorReceived", "CallTimeout", "NotConnected", "OcppException",
                 "PayloadInvalid", "ResponseInvalid", "RpcError", "ErrorCode"):
        assert name in csms.__all__ and isinstance(getattr(csms, name), type), name
    assert issubclass(csms.PayloadInvalid, csms.OcppException)
    assert issubclass(csms.ResponseInvalid, csms.OcppException)


def test_serve_help_shows_the_defaults_but_no_secret() -> None:
    shown = subprocess.run([sys.executable, "-m", "csms", "serve", "--help"],
                           capture_output=True, text=True, timeout=60).stdout
    flat = " ".join(shown.split())
    assert "port to listen on (default: 9000) [CSMS_PORT]" in flat
    assert "(default: 30.0) [CSMS_GRACEFUL_TIMEOUT]" in flat
    api_token = flat[flat.index("--api-token API_TOKEN "):flat.index("[CSMS_API_TOKEN]")]
    assert "default" not in api_token


def test_a_server_that_refuses_everyone_says_so(tmp_path: Path, server: Server) -> None:
    lonely = start_server(tmp_path, "")  # no stations, unknown ones refused
    try:
        assert "no stations are registered and unknown stations are refused" in \
            lonely.output()
    finally:
        stop_server(lonely)
    assert "no stations are registered" not in server.output()  # it has a registry


def test_metrics_carry_no_created_series(server: Server) -> None:
    text = httpx.get(f"{server.http}/metrics", timeout=5).text
    assert "csms_connections_total" in text
    assert "_created" not in text


def test_the_licence_is_declared_and_shipped() -> None:
    metadata = importlib.metadata.metadata("csms")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
