"""The Lambda handler invoked in-process with API Gateway's own event payloads (`events/`),
two function containers sharing a real Redis, and a test server in the place of API
Gateway's `@connections` management API, whose station answers the CALLs posted to it
through the other container, as a real station's answers come back as new events."""

import copy
import http.server
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from csms.config import Settings
from csms.serverless.aws_lambda import Handler
from csms.web.app import create_app
from tests.e2e.conftest import STATIONS
from tests.polling import wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).parent / "events"
ANSWERS = {"ChangeConfiguration": {"status": "Accepted"}, "Reset": {"status": "Accepted"}}
KEY_ID = "AKIDCSMSTESTEXAMPLE"


def event(name: str, **changes: Any) -> dict[str, Any]:
    """A stored API Gateway event, with some of its fields changed (dotted paths)."""
    found: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = found
        for part in parents:
            target = target[part]
        target[last] = value
    return found


class Container:
    """One Lambda container: its own app, started once, driven from one thread."""

    def __init__(self, settings: Settings) -> None:
        self.thread = ThreadPoolExecutor(1)
        self.handler = Handler(create_app(settings=settings))
        self.busy = False

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.busy = True
        try:
            answer: dict[str, Any] = self.thread.submit(self.handler, payload, None).result(30)
        finally:
            self.busy = False
        return answer

    def close(self) -> None:
        self.thread.submit(self.handler.close).result(30)
        self.thread.shutdown()


class ManagementApi(http.server.ThreadingHTTPServer):
    """API Gateway's @connections API for the tests: records each request; a CALL posted to
    an open connection is answered by its station through `answer` (the next event)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Request)
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.open: set[str] = set()
        self.answer: Any = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/prod"

    def frames(self, method: str = "POST") -> list[Any]:
        with self.lock:
            return [json.loads(body) for m, _, _, body in self.requests if m == method]


class _Request(http.server.BaseHTTPRequestHandler):
    server: ManagementApi

    def log_message(self, *args: Any) -> None:
        pass

    def _record(self) -> str | None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers), body))
        connection = self.path.removeprefix("/prod/@connections/")
        if connection not in self.server.open:
            self._reply(410, b'{"message":"Gone"}')
            return None
        return body

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._record()
        if body is None:
            return
        self._reply(200)
        frame = json.loads(body)
        if frame[0] == 2:  # the station answers, as a new event, a moment later
            connection = self.path.rsplit("/", 1)[1]
            threading.Thread(target=self.server.answer, args=(connection, frame)).start()

    def do_DELETE(self) -> None:
        if self._record() is not None:
            self.server.open.discard(self.path.rsplit("/", 1)[1])
            self._reply(204)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Container],
                                                                            ManagementApi]]:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis").start()
    api = ManagementApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    stations = tmp_path / "stations.yaml"
    stations.write_text(STATIONS)
    for key, value in {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": "x" * 40,
                       "AWS_REGION": "eu-west-1", "CSMS_GATEWAY_ENDPOINT": api.url,
                       "CSMS_GATEWAY_TOKEN": "lambda-token-of-the-tests"}.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(mode="gateway", redis_url=store.url, stations=str(stations))
    containers = [Container(settings), Container(settings)]

    def answer(connection: str, frame: list[Any]) -> None:
        # As Lambda does: a container busy with an invocation gets no other one meanwhile.
        idle = next(c for c in containers if not c.busy)
        reply = [3, frame[1], ANSWERS[frame[2]]]
        idle.invoke(event(
            "message", requestContext__connectionId=connection, body=json.dumps(reply)))

    api.answer = answer
    yield containers, api
    for container in containers:
        container.close()
    api.shutdown()
    api.server_close()
    store.stop()


def connect(container: Container, station: str, connection: str, **headers: str
            ) -> dict[str, Any]:
    payload = event("connect", requestContext__connectionId=connection,
                    queryStringParameters={"station": f"/{station}"})
    payload["headers"].update(headers)
    return container.invoke(payload)


def test_connect_answers_as_the_websocket_endpoint(
        aws: tuple[list[Container], ManagementApi]) -> None:
    (a, b), api = aws
    assert connect(a, "nobody", "c-1")["statusCode"] == 404
    refused = connect(b, "secure", "c-2")
    assert refused["statusCode"] == 401
    assert refused["headers"]["www-authenticate"].startswith("Basic")
    unagreed = connect(a, "cp16", "c-3", **{"Sec-WebSocket-Protocol": "ocpp2.0.1"})
    assert unagreed == {"statusCode": 200}  # no subprotocol: the station closes
    admitted = connect(b, "cp16", "c-4")
    assert admitted == {"statusCode": 200, "headers": {"sec-websocket-protocol": "ocpp1.6"}}
    assert api.requests == []


def test_a_station_boots_is_called_and_leaves(aws: tuple[list[Container],
                                                         ManagementApi]) -> None:
    (a, b), api = aws
    api.open.add("TqZ8bfqYjoECIpw=")
    assert connect(a, "cp16", "TqZ8bfqYjoECIpw=")["statusCode"] == 200

    # The boot's after-hook calls the station: the reply goes ahead of its CALLs through
    # the management API, and the station's answers come back through the other container.
    boot = a.invoke(event("message", body='[2,"b-1","BootNotification",{'
                          '"chargePointVendor":"Acme","chargePointModel":"One"}]'))
    assert boot == {"statusCode": 200}
    sent = api.frames()
    assert sent[0][:2] == [3, "b-1"] and sent[0][2]["status"] == "Accepted"
    assert {(f[0], f[2]) for f in sent[1:]} == {(2, "ChangeConfiguration")}
    assert len(sent) == 3
    for _, _, headers, _ in api.requests:
        assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]

    beat = b.invoke(event("message", body='[2,"h-1","Heartbeat",{}]'))
    assert beat["statusCode"] == 200 and json.loads(beat["body"])[:2] == [3, "h-1"]

    # The REST API from an HTTP API event: the CALL goes out, the answer comes back in.
    called = a.invoke(event("http-api"))
    assert called["statusCode"] == 200
    assert json.loads(called["body"]) == {"action": "Reset", "result": {"status": "Accepted"}}
    assert api.frames()[-1][2] == "Reset"

    assert b.invoke(event("disconnect")) == {"statusCode": 200}
    gone = a.invoke(event("http-api"))
    assert gone["statusCode"] == 404


def test_a_new_connection_closes_the_old_one(aws: tuple[list[Container],
                                                        ManagementApi]) -> None:
    (a, b), api = aws
    api.open.update({"old", "new"})
    assert connect(a, "any", "old")["statusCode"] == 200
    assert connect(b, "any", "new")["statusCode"] == 200
    deleted = [path for method, path, _, _ in api.requests if method == "DELETE"]
    assert deleted == ["/prod/@connections/old"]
    # A frame that still comes on the old connection is refused, and it is closed again.
    stale = a.invoke(event("message", requestContext__connectionId="old",
                           body='[2,"h-2","Heartbeat",{}]'))
    assert stale["statusCode"] == 410
    wait_until(lambda: "old" not in api.open, 5, "the old connection closed")
    fresh = b.invoke(copy.deepcopy(event("message", requestContext__connectionId="new")))
    assert fresh["statusCode"] == 200
