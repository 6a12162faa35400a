"""Counters and latencies a fleet shares, for the live display and the final summary."""

import time
from typing import Any

RESERVOIR = 20_000


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.connected = 0
        self.connects = 0
        self.disconnects = 0  # not counting reboots the central system asked for
        self.reboots = 0
        self.refused = 0
        self.calls = 0
        self.errors = 0
        self.commands = 0
        self.errors_by_kind: dict[str, int] = {}
        self._latencies: list[float] = []
        self._window_calls = 0
        self._window_start = time.monotonic()
        self.rate = 0.0

    def call_done(self, seconds: float) -> None:
        self.calls += 1
        self._window_calls += 1
        if len(self._latencies) < RESERVOIR:
            self._latencies.append(seconds)
        else:  # keep a recent window: overwrite round-robin
            self._latencies[self.calls % RESERVOIR] = seconds

    def error(self, kind: str) -> None:
        self.errors += 1
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    def tick(self) -> None:
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.rate = self._window_calls / elapsed
            self._window_calls = 0
            self._window_start = now

    def percentiles(self) -> dict[str, float]:
        data = sorted(self._latencies)
        if not data:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0}

        def at(q: float) -> float:
            return data[min(len(data) - 1, int(q * len(data)))] * 1000

        return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            "connected": self.connected, "connects": self.connects,
            "disconnects": self.disconnects, "reboots": self.reboots, "refused": self.refused,
            "calls": self.calls, "errors": self.errors, "errorsByKind": self.errors_by_kind,
            "commandsAnswered": self.commands,
            "latencyMs": {k: round(v, 2) for k, v in self.percentiles().items()},
        }
