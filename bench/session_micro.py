"""Per-message cost of the OCPP core and the central system's handlers, in process.

Feeds 100,000 literal OCPP 1.6 frames (70% MeterValues, 20% Heartbeat, 10%
StatusNotification) to one `Session` with a no-op send, with and without the app's hooks
(metrics and events), and with tracing at a 1% ratio and with every call sampled (spans
exported over OTLP/HTTP to bench/otlp_sink.py), and prints microseconds per message.
`--profile` adds a cProfile listing. No sockets: this is the part of a message's cost that
csms owns.

    python bench/session_micro.py [--profile]
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from csms.handlers import central_system
from csms.observability import tracing
from csms.observability.metrics import Metrics
from csms.protocol.router import tables
from csms.protocol.session import Session
from csms.services import Services
from csms.state.registry import StationEntry
from csms.web.app import AppHooks

NOW = "2026-01-01T00:00:00Z"
CALLS = {
    "heartbeat": ("Heartbeat", {}),
    "status": ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available"}),
    "meter": ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": NOW,
              "sampledValue": [
                  {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                  {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"}]}]}),
}
MIX = ["meter"] * 7 + ["heartbeat"] * 2 + ["status"]
N = 100_000


async def run(hooks_on: bool, tracer: tracing.Tracing | None = None) -> float:
    services = Services()
    sent = 0

    async def send(text: str) -> None:
        nonlocal sent
        sent += 1

    hooks = AppHooks(Metrics(), services) if hooks_on else None
    session = Session("CP1", "1.6", tables(central_system(services))["1.6"], send,
                      station=StationEntry("CP1", accept_all=True), hooks=hooks, tracer=tracer)
    frames = [orjson.dumps([2, str(i), *CALLS[k]]).decode() for i, k in enumerate(MIX)]
    start = time.perf_counter()
    for i in range(N):
        session.receive(frames[i % len(frames)])
    elapsed = time.perf_counter() - start
    assert sent == N, f"{sent} replies for {N} calls"
    return elapsed / N * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    for hooks_on in (False, True):
        label = "with metrics and events" if hooks_on else "core and handlers only"
        print(f"{label}: {asyncio.run(run(hooks_on)):.2f} us/message")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = subprocess.Popen([sys.executable, str(Path(__file__).parent / "otlp_sink.py"),
                             str(port)])
    try:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        for label, sampler, ratio in (("1% of calls traced", "parentbased_traceidratio", "0.01"),
                                      ("every call traced", "always_on", "")):
            os.environ.update(OTEL_TRACES_SAMPLER=sampler, OTEL_TRACES_SAMPLER_ARG=ratio)
            traced = tracing.configure()
            assert traced is not None
            print(f"with metrics and events, {label}: "
                  f"{asyncio.run(run(True, traced)):.2f} us/message")
            traced.shutdown()
    finally:
        sink.terminate()
        sink.wait(10)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, run(True))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
