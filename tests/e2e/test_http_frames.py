"""Frames posted over HTTP get the same handlers, validation and error codes."""

import httpx

from tests.e2e.conftest import Server, basic


def post(server: Server, sid: str, body: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.http}/ocpp/{sid}", content=body, headers=headers, timeout=10)


def test_a_posted_call_gets_its_callresult(server: Server) -> None:
    response = post(server, "cp16", '[2, "h1", "Heartbeat", {}]', **{"OCPP-Version": "ocpp1.6"})
    assert response.status_code == 200
    frame = response.json()
    assert frame[:2] == [3, "h1"] and frame[2]["currentTime"].endswith("Z")


def test_a_posted_bad_frame_gets_the_versions_callerror(server: Server) -> None:
    response = post(server, "cs201", "not json", **{"OCPP-Version": "2.0.1"})
    assert response.json() == [4, "-1", "RpcFrameworkError", "frame is not valid JSON", {}]
    response = post(server, "cp16", '[2, "x", "Heartbeat", {"a": 1}]',
                    **{"Sec-WebSocket-Protocol": "ocpp1.6"})
    assert response.json()[:3] == [4, "x", "FormationViolation"]


def test_the_same_refusals_apply(server: Server) -> None:
    assert post(server, "nobody", "[]", **{"OCPP-Version": "1.6"}).status_code == 404
    assert post(server, "secure", "[]", **{"OCPP-Version": "1.6"}).status_code == 401
    assert post(server, "cp16", "[]").status_code == 400  # no version
    assert post(server, "cp16", "[]", **{"OCPP-Version": "2.0.1"}).status_code == 400
    assert httpx.get(f"{server.http}/ocpp/cp16").status_code == 405
    ok = post(server, "secure", '[2, "a", "Heartbeat", {}]', **{"OCPP-Version": "1.6"},
              **basic("secure", "correct-horse-battery"))
    assert ok.status_code == 200


def test_a_posted_reply_frame_is_accepted_without_answer(server: Server) -> None:
    response = post(server, "cp16", '[3, "nobody-asked", {}]', **{"OCPP-Version": "1.6"})
    assert response.status_code == 202 and response.content == b""


def test_an_oversized_body_is_413(server: Server) -> None:
    body = '[2, "b", "DataTransfer", {"vendorId": "x", "data": "%s"}]' % ("a" * 5000)
    assert post(server, "cp16", body, **{"OCPP-Version": "1.6"}).status_code == 413
