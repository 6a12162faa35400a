"""Prometheus metrics per OCPP action, direction, version and outcome.

Label children are cached per label tuple, so the hot path costs a dict lookup, a counter
increment and a histogram observation. Each app has its own `CollectorRegistry`.
"""

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "csms_ocpp_messages", "OCPP CALLs handled, by action, direction, version, outcome",
            ["action", "direction", "version", "outcome"], registry=r)
        self.duration = Histogram(
            "csms_ocpp_message_duration_seconds",
            "Time from a CALL to its answer (inbound: our handling; outbound: the station's)",
            ["action", "direction", "version", "outcome"], buckets=BUCKETS, registry=r)
        self.connected = Gauge("csms_connected_stations", "Open station connections",
                               ["version"], registry=r)
        self.connects = Counter("csms_connections", "Accepted station connections",
                                ["version"], registry=r)
        self.disconnects = Counter("csms_disconnections", "Closed station connections",
                                   ["version", "reason"], registry=r)
        self.rejections = Counter("csms_handshake_rejections",
                                  "Websocket handshakes refused, by reason", ["reason"],
                                  registry=r)
        self.unexpected_frames = Counter(
            "csms_unexpected_frames", "Frames that matched nothing (late or unknown replies)",
            ["version", "kind"], registry=r)
        self.events_dropped = Counter("csms_events_dropped",
                                      "Events dropped because a subscriber fell behind",
                                      registry=r)
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def _child(self, key: tuple[str, str, str, str]) -> tuple[Any, Any]:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (self.messages.labels(*key), self.duration.labels(*key))
        return child

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        counter, histogram = self._child((action, "inbound", version, outcome))
        counter.inc()
        histogram.observe(seconds)

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        counter, histogram = self._child((action, "outbound", version, outcome))
        counter.inc()
        histogram.observe(seconds)

    def unexpected(self, version: str, kind: str) -> None:
        self.unexpected_frames.labels(version, kind).inc()
