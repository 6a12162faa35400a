"""Run N simulated stations at a connect rate, with a live display or a JSON summary."""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from csms.simulate.station import SimulatedStation
from csms.simulate.stats import Stats


def table(stats: Stats, options: argparse.Namespace) -> Table:
    p = stats.percentiles()
    t = Table(title=f"csms simulate: {options.stations} x OCPP {options.version} → {options.url}")
    for column in ("connected", "calls/s", "calls", "errors", "commands", "p50 ms", "p95 ms",
                   "p99 ms"):
        t.add_column(column, justify="right")
    t.add_row(f"{stats.connected}/{options.stations}", f"{stats.rate:.0f}", str(stats.calls),
              str(stats.errors), str(stats.commands), f"{p['p50']:.1f}", f"{p['p95']:.1f}",
              f"{p['p99']:.1f}")
    return t


async def fleet(options: argparse.Namespace, stats: Stats,
                stop: asyncio.Event | None = None) -> None:
    """The stations, until each was refused for good or `stop` is set."""
    stations = [SimulatedStation(f"{options.prefix}{n:04d}", options, stats, stop)
                for n in range(1, options.stations + 1)]
    tasks = []
    for station in stations:
        tasks.append(asyncio.create_task(station.run()))
        await asyncio.sleep(1.0 / options.connect_rate)
    await asyncio.gather(*tasks)


async def main(options: argparse.Namespace) -> dict[str, object]:
    stats = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C and SIGTERM end like --duration
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(fleet(options, stats, stop))
    live = None if options.no_display else Live(table(stats, options), console=Console(),
                                                refresh_per_second=4)
    with live if live is not None else contextlib.nullcontext():
        try:
            async with asyncio.timeout(options.duration):
                while not runner.done() and not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
                    stats.tick()
                    if live is not None:
                        live.update(table(stats, options))
        except TimeoutError:
            pass
        finally:
            summary = stats.summary()  # before stopping: how the fleet stood while running
            stop.set()  # each station closes its socket normally (1000)
            try:
                await asyncio.wait_for(asyncio.shield(runner), 10)
            except TimeoutError:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    return summary


def run(options: argparse.Namespace) -> int:
    try:
        summary = asyncio.run(main(options))
    except KeyboardInterrupt:
        return 130
    print(json.dumps(summary), file=sys.stdout if options.no_display else sys.stderr)
    if summary["connects"] == 0:
        reasons = ", ".join(f"{kind} x{n}" for kind, n in sorted(
            summary["errorsByKind"].items())) or "nothing answered"  # type: ignore[attr-defined]
        print(f"csms simulate: no station connected to {options.url} ({reasons})",
              file=sys.stderr)
        return 1
    if options.check and not healthy(summary, options.stations):
        print("csms simulate: the fleet had failures (see the summary)", file=sys.stderr)
        return 1
    return 0


def healthy(summary: dict[str, Any], stations: int) -> bool:
    return bool(summary["connected"] == stations and summary["refused"] == 0
                and summary["errors"] == 0 and summary["disconnects"] == 0)
