from csms.web.drain import STEP, plan


def test_sockets_are_closed_in_batches_spread_over_the_time_given() -> None:
    size, batches = plan(10_000, 10.0)
    assert batches == int(10.0 / STEP) and size * batches >= 10_000 and size == 100
    assert plan(3, 10.0) == (1, 3)  # never an empty batch
    assert plan(0, 10.0) == (0, 1)
    assert plan(50, 0.0) == (50, 1)  # no spread: all at once
