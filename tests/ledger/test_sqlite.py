"""The SQLite ledger: group commit, per-record order, retried starts, a full disk answered
with `Unavailable` and nothing half-written, and acknowledged records surviving `kill -9`."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.ledger.model import Transaction, start_16, start_fingerprint
from csms.ledger.sqlite import SqliteLedger
from csms.state.errors import Unavailable
from csms.storage.sqlite import Database
from tests.ledger.payloads import change, event

ROOT = Path(__file__).resolve().parents[2]


async def opened(path: Path) -> SqliteLedger:
    database = Database(path)
    await database.start()
    store = SqliteLedger(database)
    await store.start()
    return store


async def closed(store: SqliteLedger) -> None:
    await store.close()
    await store._database.close()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    store = await opened(tmp_path / "data" / "csms.sqlite3")
    yield store
    await closed(store)


async def test_concurrent_changes_are_group_committed_in_order(ledger: SqliteLedger) -> None:
    changes = [ledger.update(f"CS-{n}:T{n}", change(f"CS-{n}", event(f"T{n}", seq, kind)))
               for seq, kind in enumerate(["Started", "Updated", "Updated", "Ended"])
               for n in range(50)]
    results = await asyncio.gather(*changes)
    assert len(results) == 200
    assert ledger.commits < 20  # 200 changes, a handful of fsyncs
    for n in range(50):
        stored = await ledger.get(f"CS-{n}:T{n}")
        assert stored is not None and stored.status == "completed"
        assert stored.seq_nos == {0, 1, 2, 3} and stored.energy_wh == 300
    assert await ledger.get("CS-0:nothing") is None


async def test_a_retried_16_start_gets_the_first_record(ledger: SqliteLedger) -> None:
    payload = {"connectorId": 1, "idTag": "T", "meterStart": 0,
               "timestamp": "2026-03-01T10:00:00Z"}
    fingerprint = start_fingerprint("CP-1", payload)
    first = await ledger.update("16:1", lambda tx: start_16("CP-1", 1, payload, tx),
                                fingerprint)
    retried = await ledger.update("16:2", lambda tx: start_16("CP-1", 2, payload, tx),
                                  fingerprint)
    assert retried.key == first.key == "16:1"
    assert await ledger.get("16:2") is None


async def test_a_change_that_raises_fails_alone(ledger: SqliteLedger) -> None:
    def broken(tx: Transaction | None) -> Transaction:
        raise KeyError("transactionInfo")

    bad = ledger.update("CS-1:B", broken)
    good = ledger.update("CS-1:G", change("CS-1", event("G", 0, "Started")))
    outcomes = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(outcomes[0], KeyError) and isinstance(outcomes[1], Transaction)
    assert await ledger.get("CS-1:B") is None and await ledger.get("CS-1:G") is not None


async def test_a_full_disk_is_unavailable_and_writes_nothing(ledger: SqliteLedger) -> None:
    await ledger.update("CS-1:T", change("CS-1", event("T", 0, "Started")))
    db = ledger._db  # the one way to fill its disk from here
    assert db is not None
    pages = (await ledger._run(db.execute, "PRAGMA page_count")).fetchone()[0]
    await ledger._run(db.execute, f"PRAGMA max_page_count = {pages}")
    more = [ledger.update(f"CS-{n}:U", change(f"CS-{n}", event("U", 0, "Started")))
            for n in range(2, 300)]  # new records: new pages, which the disk has not
    outcomes = await asyncio.gather(ledger.update("CS-1:T", change("CS-1", event("T", 1))),
                                    *more, return_exceptions=True)
    assert all(isinstance(o, Unavailable) and "full" in str(o) for o in outcomes), outcomes[0]
    stored = await ledger.get("CS-1:T")
    assert stored is not None and stored.seq_nos == {0}  # the batch left no trace
    assert await ledger.get("CS-2:U") is None
    await ledger._run(db.execute, "PRAGMA max_page_count = 1073741823")
    retried = await ledger.update("CS-1:T", change("CS-1", event("T", 1)))  # the station retries
    assert retried.seq_nos == {0, 1}


WRITER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from csms.ledger.model import transaction_event
    from csms.ledger.sqlite import SqliteLedger
    from csms.storage.sqlite import Database

    async def main() -> None:
        database = Database(Path(sys.argv[1]))
        await database.start()
        ledger = SqliteLedger(database)
        await ledger.start()
        n = 0
        while True:  # ten stations at a time, each change acknowledged once durable
            batch = [ledger.update(f"S{k}:T{n}", lambda tx, k=k, n=n: transaction_event(
                f"S{k}", "2.0.1", {"eventType": "Started", "timestamp": "2026-03-01T10:00:00Z",
                "triggerReason": "Authorized", "seqNo": 0,
                "transactionInfo": {"transactionId": f"T{n}"}}, tx)) for k in range(10)]
            for record in await asyncio.gather(*batch):
                print(record.key, flush=True)
            n += 1

    asyncio.run(main())
""")


def write_until_killed(path: Path, acknowledged: int) -> list[str]:
    """Run a writer process, `kill -9` it once it has acknowledged that many records."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": "app"})
    assert proc.stdout is not None
    keys = []
    try:
        for line in proc.stdout:
            keys.append(line.strip())
            if len(keys) >= acknowledged:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    assert len(keys) >= acknowledged, "the writer stopped early"
    return keys


async def test_what_was_acknowledged_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    acknowledged = await asyncio.to_thread(write_until_killed, path, 500)
    reopened = await opened(path)
    try:
        for key in acknowledged:
            assert await reopened.get(key) is not None, key
    finally:
        await closed(reopened)


async def test_transaction_ids_rise_across_a_crash_and_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = await opened(path)
    before = [await first.next_id() for _ in range(150)]  # two blocks
    # No close: as after a crash, the rest of the reserved block is never given.
    again = await opened(path)
    try:
        after = [await again.next_id() for _ in range(10)]
    finally:
        await closed(again)
        await closed(first)
    assert before == sorted(set(before)) and after == sorted(set(after))
    assert min(after) > max(before)
