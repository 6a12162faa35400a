"""SIGHUP reloads the stations file; a bad file keeps the registry in force."""

import signal
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import STATIONS, start_server, stop_server
from tests.e2e.stations import connected

EXTRA = """
---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: newcomer}
spec: {authorization: {acceptAll: true}}
"""


async def test_sighup_adds_stations_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path, STATIONS)
    try:
        with pytest.raises(InvalidStatus) as caught:
            async with connected(server.ws, "newcomer", "2.0.1"):
                pass
        assert caught.value.response.status_code == 404

        server.stations.write_text(STATIONS + EXTRA)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_log("registry reloaded")
        async with connected(server.ws, "newcomer", "2.0.1") as cs:
            assert cs is not None

        server.stations.write_text(STATIONS + EXTRA.replace("acceptAll: true",
                                                            "acceptAll: maybe"))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_log("registry reload failed")
        assert "document 10 (newcomer): spec.authorization.acceptAll" in server.output()
        async with connected(server.ws, "newcomer", "2.0.1") as cs:
            assert cs is not None  # the previous registry is still in force
    finally:
        stop_server(server)


async def test_a_station_removed_by_a_reload_is_disconnected(tmp_path: Path) -> None:
    server = start_server(tmp_path, STATIONS + EXTRA)
    try:
        async with connected(server.ws, "newcomer", "2.0.1"):
            server.stations.write_text(STATIONS)
            server.proc.send_signal(signal.SIGHUP)
            server.wait_for_log("newcomer disconnected")
        with pytest.raises(InvalidStatus) as caught:
            async with connected(server.ws, "newcomer", "2.0.1"):
                pass
        assert caught.value.response.status_code == 404
    finally:
        stop_server(server)


def test_a_bad_file_at_start_is_refused_naming_document_and_field(tmp_path: Path) -> None:
    bad = STATIONS.replace("heartbeatInterval: 77", "heartbeatInterval: -5")
    with pytest.raises(RuntimeError) as caught:
        start_server(tmp_path, bad)
    assert "document 1 (cp16): spec.heartbeatInterval" in str(caught.value)
