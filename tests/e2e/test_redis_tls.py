"""Managed Redis the way clouds offer it: TLS only (rediss://) and an ACL user with a
password. A real redis-server with certificates made here; the password is never logged."""

from pathlib import Path

import trustme
from ocpp.v201 import call as call201

from tests.e2e.conftest import api, start_server, stop_server
from tests.e2e.stations import connected
from tests.redis_server import RedisServer

PASSWORD = "managed-redis-Pw-7391"


async def test_a_pod_runs_on_a_tls_redis_with_an_acl_user(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(files[0]))
    cert.private_key_pem.write_to_path(str(files[1]))
    ca.cert_pem.write_to_path(str(files[2]))
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis", ("csms", PASSWORD), files).start()
    assert store.url.startswith("rediss://csms:")
    server = start_server(tmp_path, "", "--accept-unknown", "--redis-url", store.url)
    try:
        async with connected(server.ws, "TLS-REDIS-1", "2.0.1") as station:
            boot = await station.call(call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            view = api(server, "GET", "/api/v1/stations/TLS-REDIS-1").json()
            assert view["connected"] is True and view["boot"]["model"] == "M"
    finally:
        stop_server(server)
        store.stop()
    assert PASSWORD not in server.output()
