"""The npm ocpp-rpc client in strict mode checks every reply against the official schemas."""

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

CLIENT = Path(__file__).parent / "ocpp_rpc_client" / "client.js"


@pytest.mark.parametrize(("sid", "protocol"), [("rpc16", "ocpp1.6"), ("rpc201", "ocpp2.0.1")])
def test_strict_ocpp_rpc_client_flows_pass(server: Server, sid: str, protocol: str) -> None:
    result = subprocess.run(["node", str(CLIENT), server.ws, sid, protocol],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flows ok" in result.stdout
