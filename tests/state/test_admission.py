from typing import Any

import pytest

from csms.state import admission
from csms.state.admission import TokenBucket, jittered


def test_the_bucket_admits_its_burst_then_refills_at_its_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: clock[0])
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock[0] += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock[0] += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 5


def test_rate_zero_is_unlimited() -> None:
    bucket = TokenBucket.unlimited()
    assert all(bucket.take() for _ in range(10_000))


def test_jitter_spreads_around_the_value(monkeypatch: Any) -> None:
    values = {jittered(60) for _ in range(500)}
    assert min(values) >= 30 and max(values) <= 90 and len(values) > 20
    assert jittered(0.1) == 1
