import asyncio

from csms.state.events import MemoryEventBus


async def test_a_slow_subscriber_loses_the_oldest_events_and_they_are_counted() -> None:
    bus = MemoryEventBus()
    bus.publish("CP", "1.6", "Heartbeat", {"n": 0})  # no subscriber: nothing kept
    got: list[int] = []

    async def consume() -> None:
        async for event in bus.subscribe(maxsize=2):
            got.append(event.payload["n"])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    for n in (1, 2, 3):
        bus.publish("CP", "1.6", "Heartbeat", {"n": n})
    await asyncio.sleep(0)
    task.cancel()
    assert got == [2, 3]
    assert bus.dropped == 1
