"""Prometheus metrics per OCPP action, direction, version and outcome.

The per-message series are plain numbers in a dict (`MessageStats`): a message costs a dict
lookup, two additions and a bisect, with no lock, because the event loop is the only writer
and `/metrics` is read on the same loop. They become Prometheus families at scrape time.
Connection-level metrics are ordinary prometheus_client objects (they change rarely).
Each app has its own `CollectorRegistry`.
"""

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

# No `*_created` series beside every counter and histogram: nothing reads them, and they
# double what a scrape carries.
disable_created_metrics()  # type: ignore[no-untyped-call]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LABELS = ["action", "direction", "version", "outcome"]


class _Series:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf


class MessageStats:
    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str, str], _Series] = {}

    def observe(self, key: tuple[str, str, str, str], seconds: float) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        series.count += 1
        series.total += seconds
        series.buckets[bisect_left(BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "csms_ocpp_messages", "OCPP CALLs handled, by action, direction, version, outcome",
            labels=LABELS)
        duration = HistogramMetricFamily(
            "csms_ocpp_message_duration_seconds",
            "Time from a CALL to its answer (inbound: our handling; outbound: the station's)",
            labels=LABELS)
        for key, series in list(self._series.items()):
            messages.add_metric(list(key), series.count)
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], series.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric(list(key), buckets, series.total)
        yield messages
        yield duration


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = MessageStats()
        r.register(self.messages)
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

        # Children per version looked up once: a reconnect storm pays no label lookups.
        self._opened: dict[str, tuple[Counter, Gauge]] = {}

    def opened(self, version: str) -> None:
        children = self._opened.get(version)
        if children is None:
            children = self._opened[version] = (self.connects.labels(version),
                                                self.connected.labels(version))
        children[0].inc()
        children[1].inc()

    def closed(self, version: str, reason: str) -> None:
        self.connected.labels(version).dec()
        self.disconnects.labels(version, reason).inc()

    def inbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        self.messages.observe((action, "inbound", version, outcome), seconds)

    def outbound(self, version: str, action: str, outcome: str, seconds: float) -> None:
        self.messages.observe((action, "outbound", version, outcome), seconds)

    def unexpected(self, version: str, kind: str) -> None:
        self.unexpected_frames.labels(version, kind).inc()
