"""POST /api/v1/stations/{id}/calls: every answer the station can give, as an HTTP status."""

import asyncio

from ocpp.v16 import call as call16

from tests.e2e.conftest import Server, api
from tests.e2e.stations import connected
from tests.polling import eventually


async def post(server: Server, sid: str, body: dict[str, object]) -> tuple[int, dict]:
    response = await asyncio.to_thread(api, server, "POST", f"/api/v1/stations/{sid}/calls",
                                       json=body)
    return response.status_code, response.json()


async def test_a_call_reaches_the_station_and_returns_its_result(server: Server) -> None:
    async with connected(server.ws, "any", "2.0.1"):
        status, body = await post(server, "any", {"action": "Reset",
                                                  "payload": {"type": "Immediate"}})
        assert (status, body) == (200, {"action": "Reset", "result": {"status": "Accepted"}})


async def test_a_station_that_is_not_connected_is_404(server: Server) -> None:
    status, body = await post(server, "nobody", {"action": "Reset", "payload": {"type": "Soft"}})
    assert status == 404 and "not connected" in body["detail"]


async def test_a_payload_failing_the_schema_is_422_and_never_sent(server: Server) -> None:
    async with connected(server.ws, "any", "2.0.1"):
        status, body = await post(server, "any", {"action": "Reset", "payload": {"type": "Now"}})
        assert status == 422
        assert body["detail"]["code"] == "PropertyConstraintViolation"
        assert body["detail"]["path"] == "/type"
        status, body = await post(server, "any", {"action": "StartTransaction", "payload": {}})
        assert status == 422 and body["detail"]["code"] == "NotImplemented"


async def test_a_callerror_from_the_station_is_502_with_its_code(server: Server) -> None:
    async with connected(server.ws, "any", "2.0.1"):  # it has no TriggerMessage handler
        status, body = await post(server, "any", {
            "action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}})
    assert status == 502
    assert body["detail"]["code"] in ("NotImplemented", "NotSupported")


async def test_a_station_that_does_not_answer_in_time_is_504(server: Server) -> None:
    async with connected(server.ws, "cp16", "1.6") as cp:
        cp.reset_delay = 2.0
        status, body = await post(server, "cp16", {"action": "Reset",
                                                   "payload": {"type": "Soft"}, "timeout": 0.3})
        assert status == 504 and "did not answer Reset" in body["detail"]
        cp.reset_delay = 0.0
        # The slot was freed: the next call goes through, and the late reply is ignored.
        await eventually(lambda: cp.resets_answered == 1, timeout=5)
        await eventually(lambda: 'csms_unexpected_frames_total{kind="callresult",version="1.6"}'
                         in api(server, "GET", "/metrics").text)
        status, _ = await post(server, "cp16", {"action": "Reset", "payload": {"type": "Hard"}})
        assert status == 200


async def test_calls_are_answered_while_the_station_keeps_sending(server: Server) -> None:
    async with connected(server.ws, "cp16", "1.6") as cp:
        calls = [post(server, "cp16", {"action": "Reset", "payload": {"type": "Soft"}})
                 for _ in range(5)]
        beats = [cp.call(call16.Heartbeat()) for _ in range(5)]
        results = await asyncio.gather(*calls, *beats)
        assert [r[0] for r in results[:5]] == [200] * 5
        assert all(b.current_time for b in results[5:])


def test_a_bad_request_body_is_422(server: Server) -> None:
    response = api(server, "POST", "/api/v1/stations/any/calls", json={"payload": {}})
    assert response.status_code == 422


def test_the_station_list_shows_connected_stations_only(server: Server) -> None:
    assert api(server, "GET", "/api/v1/stations").json() == []
    assert api(server, "GET", "/api/v1/stations/unknown-one").status_code == 404
    body = api(server, "GET", "/api/v1/stations/rpc16").json()
    assert body["connected"] is False


def test_docs_and_probes_are_served(server: Server) -> None:
    assert api(server, "GET", "/healthz").json() == {"status": "ok"}
    assert api(server, "GET", "/readyz").status_code == 200
    assert api(server, "GET", "/docs").status_code == 200
    spec = api(server, "GET", "/openapi.json").json()
    assert "/api/v1/stations/{station_id}/calls" in spec["paths"]
