"""Admission control for reconnect storms: a token bucket per pod.

New websocket upgrades beyond `CSMS_CONNECT_RATE` per second are refused with 503 and a
jittered Retry-After; BootNotifications beyond `CSMS_BOOT_RATE` are answered `Pending` with a
jittered interval, so a fleet that reconnects at once spreads itself out instead of failing.
"""

import math
import random
import time


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; rate 0 means unlimited."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._at = time.monotonic()

    @classmethod
    def unlimited(cls) -> "TokenBucket":
        return cls(0)

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


def jittered(seconds: float, spread: float = 0.5) -> int:
    """`seconds` ± `spread` of itself, at least 1: clients told to wait do not come back
    together."""
    return max(1, math.ceil(seconds * random.uniform(1 - spread, 1 + spread)))
