"""`make bench`'s own load driver works against a real server (figures are not asserted)."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, start_server, stop_server

DRIVER = Path(__file__).parent.parent.parent / "bench" / "driver.py"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("bench"), "", "--accept-unknown")
    yield server
    stop_server(server)


@pytest.mark.parametrize(("mode", "version", "mix"), [
    ("closed", "1.6", "standard"), ("paced", "2.0.1", "standard"),
    ("closed", "1.6", "transactions"), ("closed", "2.0.1", "transactions")])
def test_the_bench_driver_runs_a_fleet_without_errors(
    open_server: Server, mode: str, version: str, mix: str
) -> None:
    server = open_server
    out = subprocess.run(
        [sys.executable, str(DRIVER), "--url", f"{server.ws}/{{id}}", "--mode", mode,
         "--version", version, "--stations", "20", "--interval", "0.1", "--duration", "1",
         "--warmup", "0.2", "--connect-rate", "200", "--mix", mix],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["connected"] == 20 and result["connect_failed"] == 0
    assert result["calls"] > 20 and result["call_errors"] == 0
    if mix == "transactions":  # the sessions reached the ledger, and ended
        exported = httpx.get(f"{server.http}/api/v1/exports/transactions",
                             params={"status": "completed"}, timeout=30).text
        ended = [t for t in map(json.loads, exported.splitlines()) if t["version"] == version]
        assert len(ended) >= 20 and all(t["energyWh"] == 4000 for t in ended)


def test_the_gateway_bench_compares_both_modes_without_errors() -> None:
    bench = DRIVER.parent / "gateway_bench.py"
    out = subprocess.run([sys.executable, str(bench), "--stations", "10", "--duration", "1",
                          "--samples", "20"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for mode in ("websocket", "gateway"):
        assert result[mode]["calls_per_s"] > 0 and result[mode]["errors"] == 0
        assert result[mode]["api_p50_ms"] > 0
    assert "gateway / websocket station calls/s" in out.stdout
