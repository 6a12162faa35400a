"""Every ledger (memory, SQLite, Redis) answers the same queries alike: filters, time ranges
across offsets, cursor pages that add up to the whole, a station's active transactions."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from csms.cluster.ledger import RedisLedger
from csms.ledger.model import transaction_event
from csms.ledger.sqlite import SqliteLedger
from csms.ledger.store import Cursor, Ledger, MemoryLedger, Query
from csms.storage.sqlite import Database
from tests.redis_server import RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    if request.param == "sqlite":
        database = Database(tmp_path / "csms.sqlite3")
        await database.start()
        store = SqliteLedger(database)
        await store.start()
        yield store
        await store.close()
        await database.close()
        return
    server = RedisServer(tmp_path).start()
    client = Redis.from_url(server.url)
    redis_store = RedisLedger(client)
    await redis_store.start()
    try:
        yield redis_store
    finally:
        await redis_store.close()
        await client.aclose()
        server.stop()


def started(tx_id: str, at: str, token: str) -> dict[str, Any]:
    return {"eventType": "Started", "timestamp": at, "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": tx_id},
            "idToken": {"idToken": token, "type": "ISO14443"}}


async def fill(ledger: Ledger) -> None:
    # 30 transactions over three stations, a minute apart, written with two time offsets.
    for n in range(30):
        station, tx_id = f"CS-{n % 3}", f"T{n:02d}"
        minute = datetime(2026, 3, 1, 10, n, tzinfo=UTC)
        at = (minute.isoformat().replace("+00:00", "Z") if n % 2 else
              minute.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+02:00").tzinfo)
              .isoformat())
        payload = started(tx_id, at, "TAG-A" if n < 10 else "TAG-B")
        await ledger.update(f"{station}:{tx_id}",
                            lambda tx, s=station, p=payload: transaction_event(s, "2.0.1", p, tx))
        if n % 5 == 0:  # every fifth one ends
            ended = {**payload, "eventType": "Ended", "seqNo": 1}
            await ledger.update(f"{station}:{tx_id}",
                                lambda tx, s=station, p=ended: transaction_event(
                                    s, "2.0.1", p, tx))


async def test_filters_and_time_ranges(ledger: Ledger) -> None:
    await fill(ledger)
    everything = await ledger.query(Query(limit=1000))
    assert [tx.transaction_id for tx in everything] == [f"T{n:02d}" for n in range(30)]
    by_station = await ledger.query(Query(station_id="CS-1"))
    assert {tx.station_id for tx in by_station} == {"CS-1"} and len(by_station) == 10
    completed = await ledger.query(Query(status="completed"))
    assert [tx.transaction_id for tx in completed] == ["T00", "T05", "T10", "T15", "T20", "T25"]
    assert len(await ledger.query(Query(id_token="TAG-A"))) == 10
    window = await ledger.query(Query(since=datetime(2026, 3, 1, 10, 5, tzinfo=UTC),
                                      until=datetime(2026, 3, 1, 10, 8, tzinfo=UTC)))
    assert [tx.transaction_id for tx in window] == ["T05", "T06", "T07"]
    active = await ledger.active("CS-0")
    assert [tx.transaction_id for tx in active] == [
        f"T{n:02d}" for n in range(30) if n % 3 == 0 and n % 5]


async def test_cursor_pages_add_up_to_the_whole(ledger: Ledger) -> None:
    await fill(ledger)
    pages, cursor = [], None
    while True:
        page = await ledger.query(Query(station_id="CS-2", after=cursor, limit=3))
        if not page:
            break
        pages.append(page)
        cursor = Cursor.decode(Cursor.after(page[-1]).encode())
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    seen = [tx.key for page in pages for tx in page]
    assert seen == [tx.key for tx in await ledger.query(Query(station_id="CS-2", limit=100))]


@pytest.mark.parametrize("text", ["", "x", "bm90IGpzb24", "WzEsMl0", "W10"])
def test_a_cursor_not_made_here_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        Cursor.decode(text)
