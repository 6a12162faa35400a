"""Per-message cost of the OCPP core and the central system's handlers, in process.

Feeds 100,000 literal OCPP 1.6 frames (70% MeterValues, 20% Heartbeat, 10%
StatusNotification) to one `Session` with a no-op send, with and without the app's hooks
(metrics and events), and prints microseconds per message. `--profile` adds a cProfile
listing. No sockets: this is the part of a message's cost that csms owns.

    python bench/session_micro.py [--profile]
"""

import argparse
import asyncio
import cProfile
import pstats
import time

import orjson

from csms.handlers import central_system
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


async def run(hooks_on: bool) -> float:
    services = Services()
    sent = 0

    async def send(text: str) -> None:
        nonlocal sent
        sent += 1

    hooks = AppHooks(Metrics(), services) if hooks_on else None
    session = Session("CP1", "1.6", tables(central_system(services))["1.6"], send,
                      station=StationEntry("CP1", accept_all=True), hooks=hooks)
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
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, run(True))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
