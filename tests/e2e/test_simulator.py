"""`csms simulate` against a real server: a fleet boots, charges and answers commands."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import api, start_server, stop_server
from tests.polling import wait_until


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_a_simulated_fleet_runs_without_errors(tmp_path: Path, version: str) -> None:
    server = start_server(tmp_path, "", "--accept-unknown")
    try:
        sim = subprocess.Popen(
            [sys.executable, "-m", "csms", "simulate", "--url", server.ws, "--stations", "8",
             "--version", version, "--session-every", "0.5", "--meter-every", "0.2",
             "--heartbeat", "0.5", "--duration", "4", "--connect-rate", "100",
             "--no-display"], stdout=subprocess.PIPE, text=True)
        # While the fleet runs, a command through the API reaches one of its stations.
        wait_until(lambda: len(api(server, "GET", "/api/v1/stations").json()) == 8,
                   what="8 stations connected")
        reset = "Soft" if version == "1.6" else "Immediate"
        response = api(server, "POST", "/api/v1/stations/SIM-0003/calls",
                       json={"action": "Reset", "payload": {"type": reset}})
        assert response.status_code == 200, response.text
        out, _ = sim.communicate(timeout=30)
        summary = json.loads(out.strip().splitlines()[-1])
        # SIM-0003 rebooted on the Reset: it reconnected and booted again.
        assert summary["reboots"] == 1 and summary["connects"] == 9, summary
        assert summary["connected"] == 8 and summary["disconnects"] == 0, summary
        assert summary["errors"] == 0, summary
        log = server.output()
        assert log.count("SIM-0003 connected") == 2
        # The run ended by closing every socket normally, not by dropping it.
        assert "SIM-0001 disconnected (normal)" in log and "station_error" not in log
        assert summary["calls"] > 8 * 4  # boots, statuses, heartbeats and charging sessions
        assert summary["commandsAnswered"] >= 1
        metrics = api(server, "GET", "/metrics").text
        tx_action = "StartTransaction" if version == "1.6" else "TransactionEvent"
        assert f'action="{tx_action}",direction="inbound",outcome="ok",version="{version}"' \
            in metrics
    finally:
        stop_server(server)


def test_check_passes_a_healthy_fleet_and_fails_a_refused_one(tmp_path: Path) -> None:
    server = start_server(tmp_path, "", "--accept-unknown")
    try:
        def simulate(url: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "csms", "simulate", "--url", url, "--stations", "3",
                 "--duration", "2", "--no-display", "--check"],
                capture_output=True, text=True, timeout=30)

        assert simulate(server.ws).returncode == 0
        refused = simulate(server.ws.replace("/ocpp", "/nowhere"))
        assert refused.returncode == 1 and "no station connected" in refused.stderr
    finally:
        stop_server(server)


def test_a_fleet_that_never_connects_fails_and_says_why(tmp_path: Path) -> None:
    server = start_server(tmp_path, "")  # no station is registered: every one gets 404
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "csms", "simulate", "--url", server.ws, "--stations", "3",
             "--duration", "3", "--no-display"], capture_output=True, text=True, timeout=30)
    finally:
        stop_server(server)
    assert refused.returncode == 1
    assert "no station connected" in refused.stderr and "http_404 x3" in refused.stderr
    assert json.loads(refused.stdout.strip().splitlines()[-1])["refused"] == 3


def test_sigterm_ends_the_fleet_with_a_summary_and_normal_closes(tmp_path: Path) -> None:
    server = start_server(tmp_path, "", "--accept-unknown")
    try:
        sim = subprocess.Popen(
            [sys.executable, "-m", "csms", "simulate", "--url", server.ws, "--stations", "4",
             "--heartbeat", "0.5", "--no-display"], stdout=subprocess.PIPE, text=True)
        wait_until(lambda: len(api(server, "GET", "/api/v1/stations").json()) == 4,
                   what="4 stations connected")
        sim.send_signal(signal.SIGTERM)
        out, _ = sim.communicate(timeout=30)
        assert sim.returncode == 0
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["connected"] == 4 and summary["errors"] == 0
        wait_until(lambda: server.output().count("disconnected (normal)") == 4, 10,
                   "four normal closes")
    finally:
        stop_server(server)
