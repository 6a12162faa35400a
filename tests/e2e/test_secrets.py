"""Secrets never appear in logs (at debug level, plain or JSON, from csms or the libraries
under it), in errors, in metrics or in Redis: a real server with a real Redis that has an
ACL user, real stations and real API clients."""

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Server, api, basic, start_server, stop_server
from tests.e2e.stations import connected
from tests.redis_server import RedisServer

STATION_PASSWORD = "correct-horse-battery-7"
RAW_PASSWORD = "raw-not-base64-password"
API_TOKEN = "api-token-Zq8xWv3Lr5Nk2Pj9"
NEXT_TOKEN = "api-token-next-Hb6Ty1Uc4Mf0"
WRONG_TOKEN = "api-token-wrong-Qs7Ge2Dn8Ka"
REDIS_PASSWORD = "redis-Pw-Xy7Kq2Vm9Lt4"
LONG_PASSWORD = "reload-secret-that-is-far-too-long-0123456789"

STATIONS = f"""
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {{name: guarded}}
spec:
  securityProfile: 1
  protocols: [ocpp1.6]
  password: {STATION_PASSWORD}
  authorization: {{acceptAll: true}}
"""
SECRETS = [STATION_PASSWORD, RAW_PASSWORD, API_TOKEN, NEXT_TOKEN, WRONG_TOKEN, REDIS_PASSWORD,
           LONG_PASSWORD, base64.b64encode(f"guarded:{STATION_PASSWORD}".encode()).decode(),
           base64.b64encode(f"guarded:{RAW_PASSWORD}".encode()).decode()]


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), ("csms", REDIS_PASSWORD)).start()
    yield server
    server.stop()


async def exercise(server: Server) -> None:
    """Everything that carries a secret: Basic credentials right, wrong and raw, bearer
    tokens right and wrong, and a reload whose password breaks a rule."""
    async with connected(server.ws, "guarded", "1.6",
                         additional_headers=basic("guarded", STATION_PASSWORD)) as station:
        from ocpp.v16 import call as call16

        await station.call(call16.Heartbeat())
    for headers in (basic("guarded", RAW_PASSWORD),
                    {"Authorization": f"Basic guarded:{RAW_PASSWORD}"}):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(f"{server.ws}/guarded", subprotocols=["ocpp1.6"],
                                          additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
    for token, status in ((API_TOKEN, 200), (NEXT_TOKEN, 200), (WRONG_TOKEN, 401)):
        response = api(server, "GET", "/api/v1/stations",
                       headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
        assert not leaks(response.text)
    server.stations.write_text(STATIONS.replace(STATION_PASSWORD, LONG_PASSWORD))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("registry reload failed")


@pytest.mark.parametrize("json_logs", [False, True], ids=["plain", "json"])
async def test_nothing_secret_is_logged_at_debug_level(
    tmp_path: Path, store: RedisServer, json_logs: bool,
) -> None:
    server = start_server(tmp_path, STATIONS, "--redis-url", store.url, "--api-token",
                          f"{API_TOKEN},{NEXT_TOKEN}", CSMS_LOG_LEVEL="debug",
                          CSMS_LOG_JSON=str(json_logs).lower())
    try:
        await exercise(server)
        metrics = api(server, "GET", "/metrics").text
    finally:
        stop_server(server)
    log = server.output()
    # The libraries did log the handshake headers: redacted, not left out.
    assert "authorization: Basic [redacted]" in log
    assert "spec.password: must be at most 40 characters" in log
    assert leaks(log) == [], log[-3000:]
    assert leaks(metrics) == []


def test_redis_holds_no_secret_in_plain_text(tmp_path: Path, store: RedisServer) -> None:
    client = redis.Redis.from_url(store.url)
    try:
        keys = list(client.scan_iter(count=1000))
        assert any(b"registry" in k for k in keys), "the pod wrote its registry to Redis"
        dump = []
        for key in keys:
            kind = client.type(key)
            if kind == b"hash":
                dump.append(repr(client.hgetall(key)))
            elif kind == b"string":
                dump.append(repr(client.get(key)))
            elif kind == b"list":
                dump.append(repr(client.lrange(key, 0, -1)))
            elif kind == b"stream":
                dump.append(repr(client.xrange(key)))
            elif kind == b"zset":
                dump.append(repr(client.zrange(key, 0, -1)))
            elif kind == b"set":
                dump.append(repr(client.smembers(key)))
            else:  # a kind of key this test does not read yet would go unchecked
                raise AssertionError(f"{key!r} is a {kind!r}: read it here too")
        assert leaks("\n".join(dump)) == []
    finally:
        client.close()


@pytest.mark.parametrize(("env", "expected"), [
    ({"CSMS_API_TOKEN": "too-short-123"}, "CSMS_API_TOKEN: expected tokens of at least 16"),
    ({"CSMS_REDIS_URL": f"http://csms:{REDIS_PASSWORD}@127.0.0.1:1/0"},
     "CSMS_REDIS_URL: expected a redis://, rediss:// or unix:// URL"),
    ({"CSMS_REDIS_URL": f"redis://csms:{REDIS_PASSWORD}@127.0.0.1:http/0"},
     "CSMS_REDIS_URL: expected a redis://"),
])
def test_a_bad_secret_setting_is_named_never_shown(env: dict[str, str], expected: str) -> None:
    import os

    done = subprocess.run([sys.executable, "-m", "csms", "serve"], capture_output=True,
                          text=True, timeout=30, env={**os.environ, **env})
    assert done.returncode == 2
    assert expected in done.stderr
    assert "too-short-123" not in done.stderr and leaks(done.stderr) == []
