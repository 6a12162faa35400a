"""The GC pacer collects young cycles, freezes survivors and reclaims them on a full pass."""

import asyncio
import gc
import weakref

from csms.web.gc_pacing import GcPacer
from tests.polling import eventually


class Node:
    def __init__(self) -> None:
        self.other: object = self  # a reference cycle: only the cyclic collector frees it


async def test_young_cycles_are_collected_and_survivors_reclaimed_by_a_full_pass() -> None:
    pacer = GcPacer(young_every=0.01, full_every=3600)
    task = asyncio.create_task(pacer.run())
    try:
        await eventually(lambda: not gc.isenabled())
        young = Node()
        dead = weakref.ref(young)
        del young
        await eventually(lambda: dead() is None)  # a young collection found the cycle

        kept = [Node()]
        survivor = weakref.ref(kept[0])
        # It outlives a young pass, so it is frozen: no longer among the tracked objects.
        await eventually(lambda: all(o is not kept[0] for o in gc.get_objects()))
        kept.clear()
        passes = pacer.young_passes
        await eventually(lambda: pacer.young_passes > passes + 2)
        assert survivor() is not None  # frozen cycles wait for the full pass
        assert pacer.full() >= 1
        assert survivor() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_full_pass_comes_early_when_connections_churn() -> None:
    pacer = GcPacer(full_every=600, full_after_closes=100, min_full_gap=10)
    assert not pacer.due(now=50, next_full=600, last_full=0)
    pacer.closed = 100
    assert pacer.due(now=50, next_full=600, last_full=0)
    assert not pacer.due(now=5, next_full=600, last_full=0)  # not more often than the gap
    pacer.full()
    assert pacer.closed == 0 and pacer.full_passes == 1
    assert pacer.due(now=600, next_full=600, last_full=0)  # the timed pass still comes
