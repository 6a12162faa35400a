"""What a newcomer meets in the first hour (issue 12): the exceptions the README lists are
importable from `csms`, `--help` shows the defaults, a server that would refuse everyone
says so, `/metrics` carries no `*_created` clutter, the licence is declared, and a station's
state does not mix its sessions."""

import asyncio
import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

import csms
from tests.e2e.conftest import Server, api, start_server, stop_server
from tests.e2e.stations import a_new_session_starts_clean

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


def test_the_operator_says_once_what_it_cannot_reach(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    nothing = subprocess.run([sys.executable, "-m", "csms", "operator"], capture_output=True,
                             text=True, timeout=60, env={**env, "HOME": str(tmp_path)})
    assert nothing.returncode == 2
    assert "no service account" in nothing.stderr and "no kubeconfig" in nothing.stderr
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\n"
                      "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                      "users: [{name: x, user: {token: t}}]\n"
                      "contexts: [{name: x, context: {cluster: x, user: x}}]\n")
    closed = subprocess.run([sys.executable, "-m", "csms", "operator"], capture_output=True,
                            text=True, timeout=60, env={**env, "KUBECONFIG": str(config)})
    assert closed.returncode == 2
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:1 (from {config})" in \
        closed.stderr
    for run in (nothing, closed):
        assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1


def test_the_licence_is_declared_and_shipped() -> None:
    metadata = importlib.metadata.metadata("csms")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_docs_load_without_internet(server: Server) -> None:
    page = httpx.get(f"{server.http}/docs", timeout=5)
    assert page.status_code == 200
    # Every asset the page loads is served by csms itself: no CDN.
    assets = [a for a in page.text.replace("'", '"').split('"')
              if a.startswith(("http://", "https://", "//", "/docs/static/"))]
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    for asset in assets:
        served = httpx.get(f"{server.http}{asset}", timeout=5)
        assert served.status_code == 200 and served.content, asset
    bundle = httpx.get(f"{server.http}/docs/static/swagger-ui-bundle.js", timeout=5)
    assert len(bundle.content) > 500_000  # the real Swagger UI
    assert httpx.get(f"{server.http}/openapi.json", timeout=5).json()["info"]["title"] == "csms"
    assert httpx.get(f"{server.http}/docs/oauth2-redirect", timeout=5).status_code == 200


async def test_handlers_log_under_plain_uvicorn(tmp_path: Path) -> None:
    import os

    from ocpp.v201 import call as call201

    from tests.e2e.conftest import free_port
    from tests.e2e.stations import connected
    from tests.polling import eventually

    port = free_port()
    log = tmp_path / "uvicorn.log"
    proc = plain_uvicorn(port, log, {**os.environ, "CSMS_ACCEPT_UNKNOWN": "true",
                                     "PYTHONPATH": str(ROOT)})
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        await eventually(up, 20)
        async with connected(f"ws://127.0.0.1:{port}/ocpp", "CS-LOG", "2.0.1") as station:
            await station.call(call201.Authorize(
                id_token={"id_token": "FLEET-001", "type": "ISO14443"}))
        await eventually(lambda: "authorize FLEET-001: Accepted" in log.read_text(), 10)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)


def plain_uvicorn(port: int, log: Path, env: dict[str, str]) -> "subprocess.Popen[bytes]":
    """The README's developer example, served by uvicorn itself (not `csms serve`)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.app:app", "--port", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)


RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


async def test_the_api_writes_times_as_ocpp_does(server: Server) -> None:
    import re

    from ocpp.v201 import call as call201

    from tests.e2e.stations import connected

    async with connected(server.ws, "cs201", "2.0.1") as station:
        await station.call(call201.BootNotification(
            charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        async with httpx.AsyncClient() as client:
            view = (await client.get(f"{server.http}/api/v1/stations/cs201")).json()
            queued = (await client.post(f"{server.http}/api/v1/stations/rpc16/calls",
                                        json={"action": "Reset", "payload": {"type": "Soft"},
                                              "queue": True})).json()
    for key in ("connectedSince", "lastMessage", "bootedAt"):
        assert re.match(RFC3339, view[key]), (key, view[key])
    for key in ("createdAt", "expiresAt", "updatedAt"):
        assert re.match(RFC3339, queued[key]), (key, queued[key])


async def test_a_new_station_session_starts_clean(server: Server) -> None:
    async def view() -> dict[str, Any]:
        answer = await asyncio.to_thread(api, server, "GET", "/api/v1/stations/any")
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    await a_new_session_starts_clean("any", (server.ws, view), (server.ws, view))
