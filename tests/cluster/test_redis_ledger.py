"""The Redis ledger against a real redis-server: group commit, a stopped Redis answered with
`Unavailable` and nothing half-written, retention, the persistence warning, and records
acknowledged before a `kill -9` of Redis (AOF, appendfsync always) all there after it."""

import asyncio
import logging
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from csms.cluster.ledger import RedisLedger
from csms.ledger.model import Transaction, start_16, start_fingerprint, transaction_event
from csms.state.errors import Unavailable
from tests.ledger.payloads import change, event
from tests.redis_server import RedisServer


async def test_group_commit_order_retention_and_retried_starts(redis: Redis) -> None:
    ledger = RedisLedger(redis, retention_days=2)
    await ledger.start()
    try:
        await asyncio.gather(*[
            ledger.update(f"CS-{n}:T", change(f"CS-{n}", event("T", seq, kind)))
            for seq, kind in enumerate(["Started", "Updated", "Ended"]) for n in range(40)])
        assert ledger.commits < 15  # 120 changes
        ended = await ledger.get("CS-7:T")
        assert ended is not None and ended.seq_nos == {0, 1, 2} and ended.energy_wh == 200
        assert 0 < await redis.ttl("csms:tx:CS-7:T") <= 2 * 86_400  # kept for the retention
        await ledger.update("CS-1:A", change("CS-1", event("A", 0, "Started")))
        assert await redis.ttl("csms:tx:CS-1:A") == -1  # an active one never expires
        assert [tx.key for tx in await ledger.active("CS-1")] == ["CS-1:A"]

        payload = {"connectorId": 1, "idTag": "T", "meterStart": 0,
                   "timestamp": "2026-03-01T10:00:00Z"}
        fingerprint = start_fingerprint("CP-1", payload)
        first, retried = await asyncio.gather(
            ledger.update("16:1", lambda tx: start_16("CP-1", 1, payload, tx), fingerprint),
            ledger.update("16:2", lambda tx: start_16("CP-1", 2, payload, tx), fingerprint))
        assert first.key == retried.key == "16:1" and await ledger.get("16:2") is None
    finally:
        await ledger.close()


async def test_a_stopped_redis_is_unavailable_and_nothing_is_half_written(
        tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5)
    ledger = RedisLedger(client)
    await ledger.start()
    try:
        await ledger.update("CS-1:T", change("CS-1", event("T", 0, "Started")))
        server.stop()
        with pytest.raises(Unavailable, match="transaction not stored"):
            await ledger.update("CS-1:T", change("CS-1", event("T", 1)))
        with pytest.raises(Unavailable):
            await ledger.get("CS-1:T")
        server.start()  # empty: AOF off in this one
        for _ in range(3):  # the pool's connections from before the restart fail once
            try:
                retried = await ledger.update("CS-1:T", change("CS-1", event("T", 1)))
                break
            except Unavailable:
                continue
        assert retried.seq_nos == {1} and retried.out_of_order  # Started was lost with Redis
    finally:
        await ledger.close()
        await client.aclose()
        server.stop()


async def test_a_redis_without_fsync_is_warned_about(
        redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    ledger = RedisLedger(redis)
    with caplog.at_level(logging.WARNING, "csms.ledger"):
        await ledger.start()
    await ledger.close()
    assert "appendonly=no appendfsync=everysec" in caplog.text


async def test_what_was_acknowledged_survives_kill_9_of_redis(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path, durable=True).start()
    client = Redis.from_url(server.url)
    ledger = RedisLedger(client)
    with caplog.at_level(logging.WARNING, "csms.ledger"):
        await ledger.start()
    assert "appendfsync" not in caplog.text  # configured as the ledger needs
    acknowledged = []
    try:
        for n in range(30):
            records = await asyncio.gather(*[
                ledger.update(f"S{k}:T{n}", change(f"S{k}", event(f"T{n}", 0, "Started")))
                for k in range(10)])
            acknowledged += [r.key for r in records]
        server.kill()
    finally:
        await ledger.close()
        await client.aclose()
    server.start()  # replays its AOF
    again = Redis.from_url(server.url)
    try:
        for key in acknowledged:
            assert await again.exists(f"csms:tx:{key}"), key
    finally:
        await again.aclose()
        server.stop()


async def test_a_record_written_by_another_pod_meanwhile_is_read_again(
        redis: Redis, redis_server: RedisServer) -> None:
    # During a takeover two pods may briefly both take messages of one station. Here the
    # other pod writes the record between this pod's read and its write (from inside the
    # change, the only moment in between): WATCH makes this pod read it again.
    other = sync_redis.Redis.from_url(redis_server.url)
    calls = []

    def racing(tx: Transaction | None) -> Transaction:
        calls.append(tx)
        if len(calls) == 1:  # the other pod's change lands now
            theirs = transaction_event("CS-1", "2.0.1", event("T", 7))
            other.set("csms:tx:CS-1:T", theirs.dumps())
        return transaction_event("CS-1", "2.0.1", event("T", 0, "Started"), tx)

    ledger = RedisLedger(redis)
    await ledger.start()
    try:
        record = await ledger.update("CS-1:T", racing)
        assert len(calls) == 2 and calls[1] is not None  # read again, with theirs
        assert record.seq_nos == {0, 7}
        stored = await ledger.get("CS-1:T")
        assert stored is not None and stored.seq_nos == {0, 7}
    finally:
        await ledger.close()
        other.close()
