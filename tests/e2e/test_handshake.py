"""Every handshake refusal as its HTTP status, decided before the upgrade is accepted."""

import asyncio
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.e2e.conftest import Server, api, basic, start_server, stop_server


async def status_of(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    return caught.value.response.status_code


@pytest.mark.parametrize(("path", "status"), [
    ("x" * 49, 400), ("has%3Acolon", 400), ("bad%ZZ", 400), ("line%0Abreak", 400),
    ("nobody", 404), ("retired", 404),
])
async def test_bad_ids_and_unknown_or_disabled_stations_are_refused(
    server: Server, path: str, status: int
) -> None:
    assert await status_of(f"{server.ws}/{path}", subprotocols=["ocpp1.6"]) == status


@pytest.mark.parametrize("headers", [
    {}, basic("secure", "wrong-password-123"), basic("someone-else", "correct-horse-battery"),
    {"Authorization": "Basic !!notbase64"},
], ids=["missing", "wrong password", "wrong user", "garbled"])
async def test_missing_or_wrong_credentials_are_401(server: Server, headers: dict) -> None:
    assert await status_of(f"{server.ws}/secure", subprotocols=["ocpp1.6"],
                           additional_headers=headers) == 401


async def test_right_credentials_connect(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/secure", subprotocols=["ocpp1.6"],
                                  additional_headers=basic("secure", "correct-horse-battery")
                                  ) as ws:
        assert ws.subprotocol == "ocpp1.6"


async def test_profile_2_over_plain_websocket_is_403(server: Server) -> None:
    assert await status_of(f"{server.ws}/tls-only", subprotocols=["ocpp1.6"],
                           additional_headers=basic("tls-only", "correct-horse-battery")) == 403


async def test_the_most_preferred_allowed_subprotocol_is_chosen(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/any",
                                  subprotocols=["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]) as ws:
        assert ws.subprotocol == "ocpp2.1"
    async with websockets.connect(f"{server.ws}/cs21",
                                  subprotocols=["ocpp1.6", "ocpp2.0.1"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"


async def test_no_agreed_subprotocol_completes_the_handshake_then_closes(server: Server) -> None:
    for offered in (["ocpp2.0.1"], ["chat"], None):
        kwargs = {"subprotocols": offered} if offered else {}
        async with websockets.connect(f"{server.ws}/cp16", **kwargs) as ws:  # type: ignore
            assert ws.subprotocol is None
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1002


def test_refusals_are_counted_by_reason(server: Server) -> None:
    text = api(server, "GET", "/metrics").text
    for reason in ("bad_id", "unknown", "disabled", "no_credentials", "bad_credentials",
                   "tls_required", "no_subprotocol"):
        assert f'csms_handshake_rejections_total{{reason="{reason}"}}' in text


async def test_connections_beyond_the_admission_rate_get_503_with_retry_after(
    tmp_path: Path,
) -> None:
    limited = start_server(tmp_path, "", "--accept-unknown", "--connect-rate", "0.5")
    try:
        admitted, refused = [], []
        for n in range(6):  # a burst of 2 s worth (one) is admitted, then one per 2 s
            try:
                async with websockets.connect(f"{limited.ws}/STORM-{n}",
                                              subprotocols=["ocpp1.6"]):
                    admitted.append(n)
            except InvalidStatus as exc:
                refused.append(exc.response)
        assert admitted == [0] and len(refused) == 5
        assert {r.status_code for r in refused} == {503}
        assert all(1 <= int(r.headers["Retry-After"]) <= 8 for r in refused)
    finally:
        stop_server(limited)


async def test_a_refusal_is_logged_at_info_and_never_as_an_error(tmp_path: Path) -> None:
    quiet = start_server(tmp_path)
    try:
        assert await status_of(f"{quiet.ws}/nobody", subprotocols=["ocpp1.6"]) == 404
        assert await status_of(f"{quiet.ws}/secure", subprotocols=["ocpp1.6"]) == 401
        quiet.wait_for_log("handshake refused (401)")
        log = quiet.output()
        assert "INFO csms.websocket handshake refused (404)" in log
        assert "ERROR" not in log and "without completing handshake" not in log
    finally:
        stop_server(quiet)
