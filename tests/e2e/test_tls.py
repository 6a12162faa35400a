"""Security profiles 2 and 3 over real TLS, with certificates made here: csms terminating TLS
itself, a real nginx terminating it in front of csms, and a server that cannot verify
client certificates at all."""

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets
from ocpp.v201 import call as call201
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import STATIONS, Server, api, basic, start_server, stop_server
from tests.e2e.stations import connected
from tests.nginx_server import Nginx, Termination

PROFILE_3 = STATIONS + """
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: p3a}
spec: {securityProfile: 3, protocols: [ocpp2.0.1], authorization: {acceptAll: true}}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: p3b}
spec: {securityProfile: 3, protocols: [ocpp2.0.1], authorization: {acceptAll: true}}
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: sim-0001}
spec: {securityProfile: 3, authorization: {acceptAll: true}}
"""
HEADER = "X-SSL-Client-Subject-DN"


class Pki:
    """A CSO's CA with the server's and the stations' certificates, and a stranger's CA."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA(organization_name="Example CSO")
        self.rogue = trustme.CA(organization_name="Somebody Else")
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = self._write("server.pem", server.cert_chain_pems[0].bytes())
        self.key = self._write("server.key", server.private_key_pem.bytes())
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.stations = {sid: self.ca.issue_cert(f"{sid}.stations.example", common_name=sid)
                         for sid in ("p3a", "p3b")}
        self.forged = self.rogue.issue_cert("p3a.stations.example", common_name="p3a")

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def client(self, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def tls_server(tmp: Path, pki: Pki, *args: str) -> Iterator[Server]:
    server = start_server(tmp, PROFILE_3, "--ssl-certfile", str(pki.cert), "--ssl-keyfile",
                          str(pki.key), *args, ca=pki.client())
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Server]:
    """csms terminates TLS and verifies client certificates against the CSO's CA."""
    with tls_server(tmp_path_factory.mktemp("direct"), pki,
                    "--ssl-ca-certs", str(pki.ca_file)) as server:
        yield server


async def refusal(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(url, subprotocols=["ocpp2.0.1"], **kwargs):
            pass
    return caught.value.response.status_code


async def boots(url: str, sid: str, context: ssl.SSLContext) -> str:
    async with connected(url, sid, "2.0.1", ssl=context) as station:
        result = await station.call(call201.BootNotification(
            charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        return str(result.status)


def rejections(server: Server) -> dict[str, float]:
    counts = {}
    for line in api(server, "GET", "/metrics").text.splitlines():
        if line.startswith("csms_handshake_rejections_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


async def test_a_profile_3_station_with_its_own_certificate_connects_and_boots(
    direct: Server, pki: Pki,
) -> None:
    assert await boots(direct.ws, "p3a", pki.client(pki.stations["p3a"])) == "Accepted"


async def test_another_stations_certificate_is_refused_with_401(
    direct: Server, pki: Pki,
) -> None:
    before = rejections(direct).get("bad_certificate", 0)
    assert await refusal(f"{direct.ws}/p3a", ssl=pki.client(pki.stations["p3b"])) == 401
    assert rejections(direct)["bad_certificate"] == before + 1


async def test_no_certificate_is_refused_with_401(direct: Server, pki: Pki) -> None:
    before = rejections(direct).get("no_certificate", 0)
    assert await refusal(f"{direct.ws}/p3a", ssl=pki.client()) == 401
    assert rejections(direct)["no_certificate"] == before + 1


async def test_a_certificate_from_another_ca_fails_the_tls_handshake(
    direct: Server, pki: Pki,
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, websockets.InvalidMessage,
                        websockets.ConnectionClosed, EOFError)):
        async with websockets.connect(f"{direct.ws}/p3a", subprotocols=["ocpp2.0.1"],
                                      ssl=pki.client(pki.forged)) as ws:
            await ws.recv()
    assert "p3a" not in {s["id"] for s in api(direct, "GET", "/api/v1/stations").json()}


async def test_profile_2_stations_need_no_certificate_on_the_same_port(
    direct: Server, pki: Pki,
) -> None:
    async with websockets.connect(f"{direct.ws}/tls-only", subprotocols=["ocpp1.6"],
                                  ssl=pki.client(),
                                  additional_headers=basic("tls-only", "correct-horse-battery")
                                  ) as ws:
        assert ws.subprotocol == "ocpp1.6"
    assert await refusal(f"{direct.ws}/tls-only", ssl=pki.client(),
                         additional_headers=basic("tls-only", "wrong-password-12")) == 401


def test_http_posted_frames_are_bound_to_the_certificate_too(direct: Server, pki: Pki) -> None:
    def post(cert: trustme.LeafCert | None) -> httpx.Response:
        return httpx.post(f"{direct.http}/ocpp/p3a", content='[2, "h1", "Heartbeat", {}]',
                          headers={"OCPP-Version": "ocpp2.0.1"}, timeout=10,
                          verify=pki.client(cert))

    accepted = post(pki.stations["p3a"])
    assert accepted.status_code == 200 and accepted.json()[:2] == [3, "h1"]
    assert post(pki.stations["p3b"]).status_code == 401
    assert post(None).status_code == 401


async def test_a_server_that_cannot_verify_certificates_refuses_profile_3(
    tmp_path: Path, pki: Pki,
) -> None:
    with tls_server(tmp_path, pki) as server:  # TLS, but no client CA and no header
        assert "3 security profile 3 stations will be refused" in server.output()
        assert await refusal(f"{server.ws}/p3a", ssl=pki.client(pki.stations["p3a"])) == 403
        assert rejections(server) == {"cert_unverifiable": 1}
        async with websockets.connect(f"{server.ws}/tls-only", subprotocols=["ocpp1.6"],
                                      ssl=pki.client(), additional_headers=basic(
                                          "tls-only", "correct-horse-battery")):
            pass  # profile 2 is unaffected


async def test_profile_3_behind_a_tls_terminating_nginx(tmp_path: Path, pki: Pki) -> None:
    csms = start_server(tmp_path, PROFILE_3, "--proxy-headers", "--client-cert-header", HEADER)
    (tmp_path / "nginx").mkdir()
    nginx = Nginx(tmp_path / "nginx", [csms.port],
                  Termination(pki.cert, pki.key, pki.ca_file, HEADER))
    try:
        nginx.start()
        assert await boots(nginx.ws, "p3a", pki.client(pki.stations["p3a"])) == "Accepted"
        assert await refusal(f"{nginx.ws}/p3a", ssl=pki.client(pki.stations["p3b"])) == 401
        assert await refusal(f"{nginx.ws}/p3a", ssl=pki.client()) == 401
        # A station forging the header gets nothing: nginx overwrites it.
        assert await refusal(f"{nginx.ws}/p3a", ssl=pki.client(),
                             additional_headers={HEADER: "CN=p3a"}) == 401
        counts = rejections(csms)
        assert counts["bad_certificate"] == 1 and counts["no_certificate"] == 2
        # Without TLS in front (no X-Forwarded-Proto), profile 3 is refused as plain ws.
        assert await refusal(f"{csms.ws}/p3a", additional_headers={HEADER: "CN=p3a"}) == 403
    finally:
        nginx.stop()
        stop_server(csms)


def test_csms_simulate_speaks_profile_3_with_a_client_certificate(
    direct: Server, pki: Pki, tmp_path: Path,
) -> None:
    import subprocess
    import sys

    pem = tmp_path / "sim-0001.pem"
    pki.ca.issue_cert("sim-0001.stations.example", common_name="sim-0001") \
        .private_key_and_cert_chain_pem.write_to_path(str(pem))

    def simulate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "csms", "simulate", "--url", direct.ws, "--prefix", "sim-",
             "--stations", "1", "--duration", "3", "--no-display", "--check",
             "--ca-certs", str(pki.ca_file), *extra],
            capture_output=True, text=True, timeout=60)

    assert simulate("--client-cert", str(pem)).returncode == 0
    assert simulate().returncode == 1  # no certificate: refused, and --check says so
