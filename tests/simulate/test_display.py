"""The live display shows what the fleet is doing."""

import argparse

from rich.console import Console

from csms.simulate.fleet import table
from csms.simulate.stats import Stats


def test_the_display_shows_connections_rate_errors_and_latency() -> None:
    stats = Stats()
    stats.connected = 3
    for ms in (1, 2, 3, 4, 100):
        stats.call_done(ms / 1000)
    stats.error("CallTimeout")
    options = argparse.Namespace(stations=5, version="2.0.1", url="ws://x/ocpp")
    console = Console(record=True, width=120)
    console.print(table(stats, options))
    text = console.export_text()
    assert "3/5" in text and "p99 ms" in text and "100.0" in text
    summary = stats.summary()
    assert summary["errors"] == 1 and summary["errorsByKind"] == {"CallTimeout": 1}
    assert summary["latencyMs"]["p50"] == 3.0
