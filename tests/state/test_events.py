import asyncio

from csms.state.events import Event, MemoryEventBus


async def test_a_slow_subscriber_loses_the_oldest_events_and_they_are_counted() -> None:
    bus = MemoryEventBus()
    bus.publish(Event("CP", "1.6", "Heartbeat", {}, 0.0))  # no subscriber: nothing kept
    got: list[float] = []

    async def consume() -> None:
        async for event in bus.subscribe(maxsize=2):
            got.append(event.time)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    for t in (1.0, 2.0, 3.0):
        bus.publish(Event("CP", "1.6", "Heartbeat", {}, t))
    await asyncio.sleep(0)
    task.cancel()
    assert got == [2.0, 3.0]
    assert bus.dropped == 1
