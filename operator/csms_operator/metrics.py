"""The operator's Prometheus metrics, served on `CSMS_OPERATOR_METRICS_PORT` (0: not served):
what the chart's "Operator" alerts and dashboard read."""

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` series

REGISTRY = CollectorRegistry()
RECONCILES = Counter("csms_operator_reconciles",
                     "ChargingStations reconciled, by outcome (ok, invalid, secret_missing, "
                     "error)", ["outcome"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram("csms_operator_reconcile_duration_seconds",
                              "Time to reconcile one ChargingStation (hashing included)",
                              buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                              registry=REGISTRY)
STATUS_WRITES = Counter("csms_operator_status_writes", "Status patches written",
                        registry=REGISTRY)
STATIONS = Gauge("csms_operator_stations", "ChargingStations the operator looks after",
                 registry=REGISTRY)
STATUS_PASS_SECONDS = Gauge("csms_operator_status_pass_seconds",
                            "Duration of the last pass over every station's live state",
                            registry=REGISTRY)
for outcome in ("ok", "invalid", "secret_missing", "error"):
    RECONCILES.labels(outcome)  # every series exists from the start: rates need no gaps


def serve(port: int) -> Any:
    """The /metrics endpoint, in a thread of its own; returns the server (to shut down)."""
    server, _ = start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
    return server
