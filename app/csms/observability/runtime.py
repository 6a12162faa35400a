"""The process's own health, for the "Runtime" and "Cluster" dashboards: how late the event
loop runs (its lag), how long garbage collection pauses it, and Redis's round trip and
errors. All observed off the message path: the GC pacer's timer every 0.1 s and the
cluster's heartbeat every second measure them, and errors are counted where they happen.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Runtime:
    def __init__(self, registry: CollectorRegistry) -> None:
        ProcessCollector(registry=registry)  # CPU, RSS, open file descriptors
        self._lag = Histogram("csms_event_loop_lag_seconds",
                              "How late the event loop ran a 0.1 s timer", buckets=LAG_BUCKETS,
                              registry=registry)
        self._pauses = Histogram("csms_gc_pause_seconds",
                                 "Garbage-collection pauses, by pass (young, full)", ["pass"],
                                 buckets=PAUSE_BUCKETS, registry=registry)
        self._young = self._pauses.labels("young")
        self._full = self._pauses.labels("full")
        self._redis = Histogram("csms_redis_roundtrip_seconds",
                                "Round trip of the cluster heartbeat's Redis write",
                                buckets=REDIS_BUCKETS, registry=registry)
        self._redis_errors = Counter("csms_redis_errors",
                                     "Redis commands that failed, by what csms was doing",
                                     ["operation"], registry=registry)
        for operation in ("heartbeat", "route"):
            self._redis_errors.labels(operation)  # at 0 from the start: rates without gaps

    def lag(self, seconds: float) -> None:
        self._lag.observe(max(seconds, 0.0))

    def paused(self, full: bool, seconds: float) -> None:
        (self._full if full else self._young).observe(seconds)

    def redis(self, seconds: float) -> None:
        self._redis.observe(seconds)

    def redis_failed(self, operation: str) -> None:
        self._redis_errors.labels(operation).inc()
