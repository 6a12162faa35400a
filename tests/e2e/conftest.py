"""Real servers on loopback: `csms serve` subprocesses, and clients that talk to them."""

import base64
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.polling import wait_until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under e2e/ runs real processes on loopback (`make unit` skips it).
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.integration)

STATIONS = """
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: cp16}
spec:
  protocols: [ocpp1.6]
  heartbeatInterval: 77
  authorization: {idTokens: [TAG-OK]}
  configuration: {MeterValueSampleInterval: 15, StopTransactionOnEVSideDisconnect: true}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: cs201}
spec:
  protocols: [ocpp2.0.1]
  authorization: {acceptAll: true}
  configuration: {OCPPCommCtrlr.HeartbeatInterval: 90, AuthCtrlr.Enabled: true}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: cs21}
spec:
  protocols: [ocpp2.1, ocpp2.0.1]
  authorization: {acceptAll: true}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: secure}
spec:
  securityProfile: 1
  password: correct-horse-battery
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: tls-only}
spec:
  securityProfile: 2
  password: correct-horse-battery
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: retired}
spec: {enabled: false}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: any}
spec: {authorization: {acceptAll: true}}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: rpc16}
spec: {protocols: [ocpp1.6], authorization: {acceptAll: true}}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: rpc201}
spec: {protocols: [ocpp2.0.1], authorization: {acceptAll: true}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    stations: Path
    log: Path
    log_file: Any
    ca: ssl.SSLContext | None = None  # set when the server speaks TLS: trusts its certificate
    internal_port: int | None = None  # the API's port, when split from the stations' one

    @property
    def ws(self) -> str:
        return f"{'wss' if self.ca else 'ws'}://127.0.0.1:{self.port}/ocpp"

    @property
    def http(self) -> str:
        """Where the API, the probes and /metrics are."""
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.internal_port or self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_log(self, text: str, timeout: float = 5.0) -> None:
        wait_until(lambda: text in self.output(), timeout,
                   f"{text!r} in the log:\n{self.output()[-3000:]}")


def start_server(tmp: Path, stations: str = STATIONS, *args: str,
                 ca: ssl.SSLContext | None = None, **env: str) -> Server:
    path = tmp / "stations.yaml"
    path.write_text(stations)
    port = free_port()
    internal = int(args[args.index("--internal-port") + 1]) if "--internal-port" in args else None
    return launch(tmp, ["serve", "--host", "127.0.0.1", "--port", str(port),
                        "--stations", str(path), *args],
                  Server(port, None, path, tmp / "server.log", None, ca, internal), env)


def start_gateway(tmp: Path, backend: str, *args: str, ca: ssl.SSLContext | None = None,
                  **env: str) -> Server:
    """`csms gateway` on a free port, posting to `backend`."""
    port = free_port()
    internal = int(args[args.index("--internal-port") + 1]) if "--internal-port" in args else None
    return launch(tmp, ["gateway", "--host", "127.0.0.1", "--port", str(port),
                        "--backend", backend, *args],
                  Server(port, None, tmp / "none", tmp / "gateway.log", None, ca, internal), env)


def launch(tmp: Path, argv: list[str], server: Server, env: dict[str, str],
           module: str = "csms") -> Server:
    """Run `python -m MODULE ARGV` as `server` says (its log, its ports), until its /readyz
    answers."""
    server.log_file = log_file = server.log.open("wb")
    server.proc = proc = subprocess.Popen(
        [sys.executable, "-m", module, *argv], stdout=log_file, stderr=subprocess.STDOUT,
        env={**os.environ, "CSMS_LOG_LEVEL": "info", **env},
    )
    ca = server.ca

    def ready() -> bool:
        if proc.poll() is not None:
            log_file.close()
            raise RuntimeError(f"{module} {argv[0]} exited: {server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{server.http}/readyz", timeout=1,
                             verify=ca or True).status_code == 200
        return False

    try:
        wait_until(ready, 20, f"{module} {argv[0]} to be ready")
    except AssertionError:
        proc.kill()
        log_file.close()
        raise RuntimeError(f"{module} {argv[0]} not ready: {server.output()}") from None
    return server


def stop_server(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    server.log_file.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server"), STATIONS, "--ping-interval", "0.5",
                     "--ping-timeout", "0.5", "--max-frame-size", "4096")
    yield s
    stop_server(s)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def api(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("verify", server.ca or True)
    return httpx.request(method, f"{server.http}{path}", timeout=30, **kwargs)
