"""Traces from real `csms serve` processes, received over OTLP/HTTP as a collector would
(tests/otlp_receiver.py): the RPC conventions' names and values, errors on CALLERRORs, the
handshake, the REST API, logs that name their trace, and one trace across two pods."""

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.observability import tracing
from tests.e2e.conftest import STATIONS, Server, start_server, stop_server
from tests.e2e.stations import connected
from tests.otlp_receiver import Receiver, Span
from tests.polling import eventually
from tests.redis_server import RedisServer

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def otel(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "csms-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
            "OTEL_BSP_SCHEDULE_DELAY": "50", "CSMS_LOG_JSON": "true", **extra}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.mark.parametrize("env", [
    {},  # no endpoint: off
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
])
def test_tracing_is_off_without_an_exporter(monkeypatch: pytest.MonkeyPatch,
                                            env: dict[str, str]) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.configure() is None


def test_an_unsupported_protocol_is_refused_with_a_clear_error(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with caplog.at_level(logging.ERROR, "csms.tracing"):
        assert tracing.configure() is None
    assert "only the otlp exporter over http/protobuf" in caplog.text


async def test_spans_of_a_station_its_handshake_and_the_api(tmp_path: Path,
                                                            receiver: Receiver) -> None:
    server = start_server(tmp_path, STATIONS, **otel(receiver))
    try:
        await _exercise(server)

        def spans_in() -> bool:
            return bool(receiver.named("Reset")) and bool(receiver.named("StopTransaction"))

        await eventually(spans_in, 10)
    finally:
        stop_server(server)

    (boot,) = [s for s in receiver.named("BootNotification")
               if s.attributes["ocpp.station.id"] == "cs201"]
    assert boot.kind == "SERVER" and not boot.error and boot.parent_id == ""
    assert boot.attributes == {
        "rpc.system.name": "ocpp", "rpc.method": "BootNotification",
        "ocpp.station.id": "cs201", "ocpp.version": "2.0.1",
        "ocpp.message.id": boot.attributes["ocpp.message.id"]}
    assert boot.resource["service.name"] == "csms-test"
    assert boot.resource["deployment.environment.name"] == "test"
    # Linked to the connection's handshake, which says how it went.
    (handshake,) = [s for s in receiver.named("OCPP handshake")
                    if (s.trace_id, s.span_id) in boot.links]
    assert handshake.attributes["csms.handshake.outcome"] == "admitted"
    assert handshake.attributes["ocpp.version"] == "2.0.1"
    refused = [s for s in receiver.named("OCPP handshake")
               if s.attributes.get("csms.handshake.outcome") == "refused"]
    (stranger,) = [s for s in refused if s.attributes["ocpp.station.id"] == "nobody-knows-me"]
    assert stranger.attributes["csms.handshake.reason"] == "unknown"
    assert stranger.attributes["http.response.status_code"] == 404 and not stranger.error

    # A CALLERROR is the span's error, with its code.
    (bad,) = [s for s in receiver.named("Heartbeat") if s.error]
    # (a property the schema does not allow: 2.0.1's ProtocolError, as csms answers it)
    assert bad.attributes["error.type"] == "ProtocolError"
    assert bad.attributes["rpc.response.status_code"] == "ProtocolError"
    (unknown,) = receiver.named("ocpp")
    assert unknown.attributes["rpc.method"] == "_OTHER"
    assert unknown.attributes["rpc.method_original"] == "NoSuchAction"
    assert unknown.attributes["error.type"] == "NotImplemented"

    # The API request continues the caller's trace; our CALL to the station is its child.
    (request,) = [s for s in receiver.trace(CALLER_TRACE) if s.kind == "SERVER"]
    assert request.name == "POST /api/v1/stations/{station_id}/calls"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/api/v1/stations/{station_id}/calls"
    (reset,) = receiver.named("Reset")
    assert reset.kind == "CLIENT" and reset.trace_id == CALLER_TRACE
    assert reset.parent_id == request.span_id and not reset.error

    # A log line written while a span was current names it.
    (stop,) = receiver.named("StopTransaction")
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    (warned,) = [line for line in lines if "unknown transaction" in line["message"]]
    assert (warned["trace_id"], warned["span_id"]) == (stop.trace_id, stop.span_id)


async def _exercise(server: Server) -> None:
    async with connected(server.ws, "cs201", "2.0.1") as station:
        await station.call(call201.BootNotification(
            charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        ws = station._connection
        await ws.send('[2, "bad-1", "Heartbeat", {"unexpected": 1}]')
        await ws.send('[2, "bad-2", "NoSuchAction", {}]')
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{server.http}/api/v1/stations/cs201/calls", json={
                    "action": "Reset", "payload": {"type": "Immediate"}},
                headers={"traceparent": TRACEPARENT}, timeout=30)
        assert answer.status_code == 200, answer.text
    async with connected(server.ws, "cp16", "1.6") as station16:
        await station16.call(call16.StopTransaction(meter_stop=1, timestamp="2026-01-01T00:00:00Z",
                                                    transaction_id=987654))
    with pytest.raises(websockets.InvalidStatus):
        async with connected(server.ws, "nobody-knows-me", "2.0.1"):
            pass


async def test_an_api_call_for_a_station_on_another_pod_is_one_trace(
        tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis").start()
    pods: list[Server] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            pods.append(start_server(tmp_path / name, "", "--accept-unknown", "--redis-url",
                                     store.url, **otel(receiver, OTEL_SERVICE_NAME=name)))
        pod_a, pod_b = pods
        async with connected(pod_b.ws, "CROSS-1", "2.0.1") as station:
            await station.call(call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            async with httpx.AsyncClient() as client:  # the station answers meanwhile
                answer = await client.post(
                    f"{pod_a.http}/api/v1/stations/CROSS-1/calls", timeout=30,
                    json={"action": "Reset", "payload": {"type": "Immediate"}},
                    headers={"traceparent": TRACEPARENT})
            assert answer.status_code == 200, answer.text
        await eventually(lambda: len(receiver.trace(CALLER_TRACE)) == 4, 10)
    finally:
        for pod in pods:
            stop_server(pod)
        store.stop()

    spans = {s.name: s for s in receiver.trace(CALLER_TRACE)}
    request = spans["POST /api/v1/stations/{station_id}/calls"]
    route, routed, reset = spans["route Reset"], spans["routed Reset"], spans["Reset"]
    assert {request.resource["service.name"], route.resource["service.name"]} == {"a"}
    assert {routed.resource["service.name"], reset.resource["service.name"]} == {"b"}
    chain: list[Span] = [request, route, routed, reset]
    for parent, child in itertools.pairwise(chain):
        assert child.parent_id == parent.span_id, (parent.name, child.name)
    assert route.kind == "CLIENT" and routed.kind == "SERVER" and reset.kind == "CLIENT"
    assert route.attributes["csms.call.status"] == 200 and not route.error
