"""The embedded command queue survives a crash: what was queued comes back in order, and a
command caught sent is failed, never sent twice."""

from pathlib import Path

from csms.state.commands import ANSWERED, FAILED, QUEUED, SENT, Command
from csms.state.commands_sqlite import SqliteCommandStore
from csms.storage.sqlite import Database


async def opened(path: Path) -> tuple[Database, SqliteCommandStore]:
    database = Database(path)
    await database.start()
    store = SqliteCommandStore(database)
    await store.start()
    return database, store


async def test_the_queue_comes_back_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "csms.sqlite3"
    database, store = await opened(path)
    commands = [Command.new(sid, "Reset", {"type": "Soft"}, 3600)
                for sid in ("CP-1", "CP-1", "CP-1", "CP-2")]
    for command in commands:
        await store.add(command)
    sent = await store.pop("CP-1")  # the first goes out and is never answered
    assert sent is commands[0]
    sent.status = SENT
    await store.save(sent)
    answered = await store.pop("CP-2")
    assert answered is not None
    answered.status, answered.result = ANSWERED, {"status": "Accepted"}
    await store.save(answered)
    back = await store.pop("CP-1")  # taken, but the socket closed before it went out
    assert back is commands[1]
    await store.requeue(back)
    # A crash: nothing closed, a new process opens the same file.
    again_db, again = await opened(path)
    try:
        assert again.maybe_queued("CP-1") and not again.maybe_queued("CP-2")
        order = [await again.pop("CP-1"), await again.pop("CP-1"), await again.pop("CP-1")]
        assert [c.id if c else None for c in order] == [commands[1].id, commands[2].id, None]
        assert all(c is not None and c.status == QUEUED for c in order[:2])
        failed = await again.get(commands[0].id)
        assert failed is not None and failed.status == FAILED
        assert failed.error == {"status": 504,
                                "detail": "csms restarted before the station answered"}
        kept = await again.get(answered.id)
        assert kept is not None and kept.result == {"status": "Accepted"}
    finally:
        await again_db.close()
        await database.close()
