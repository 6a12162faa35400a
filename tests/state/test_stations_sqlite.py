"""Embedded station state comes back after a restart: boot, session, connectors, meter
values and configuration outcomes, written behind in batches."""

from pathlib import Path

from csms.state.stations_sqlite import SqliteStationStore
from csms.storage.sqlite import Database


async def test_station_state_outlives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "csms.sqlite3"
    database = Database(path)
    await database.start()
    store = SqliteStationStore(database, every=3600)  # written by flush below only
    await store.start()
    await store.record_protocol("CP-1", "2.0.1")
    await store.record_boot("CP-1", {"vendor": "V", "model": "M", "reason": "PowerUp"})
    await store.record_connector("CP-1", "1/1", {"status": "Charging"})
    await store.record_meter_values("CP-1", {"evseId": 1})
    await store.record_configuration("CP-1", "A.B", "Accepted")
    await store.record_connector("CP-2", "1", {"status": "Available"})
    before = {sid: (await store.get(sid)).view() for sid in ("CP-1", "CP-2")}  # type: ignore[union-attr]
    await store.flush()
    again_db = Database(path)  # as after kill -9: the first never closed
    await again_db.start()
    again = SqliteStationStore(again_db, every=3600)
    await again.start()
    try:
        after = {sid: (await again.get(sid)).view() for sid in ("CP-1", "CP-2")}  # type: ignore[union-attr]
        assert after == before and after["CP-1"]["boot"] == {
            "vendor": "V", "model": "M", "reason": "PowerUp"}
    finally:
        await again.close()
        await again_db.close()
        await store.close()
        await database.close()
