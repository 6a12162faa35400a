"""The ledger end to end: sessions of the `ocpp` library's stations in 1.6, 2.0.1 and 2.1
appear in the API with the right energy, page by page and exported; and a `kill -9` of the
embedded server in the middle of a fleet's sessions loses nothing it acknowledged."""

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from ocpp.exceptions import InternalError
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from tests.e2e.conftest import Server, api, start_server, stop_server
from tests.e2e.stations import connected
from tests.polling import eventually, wait_until
from tests.redis_server import RedisServer

STATIONS = "".join(f"""---
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {{name: {name}}}
spec: {{authorization: {{acceptAll: true}}}}
""" for name in ["tx16", "tx201", "tx21", *[f"fleet-{n}" for n in range(20)]])


@pytest.fixture(scope="module")
def ledger_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("ledger")
    server = start_server(folder, STATIONS, "--data-dir", str(folder / "data"))
    yield server
    stop_server(server)


def register(value: float, unit: str, context: str, version: str) -> dict[str, Any]:
    if version == "1.6":
        return {"value": str(value), "unit": unit, "context": context}
    return {"value": value, "context": context, "unitOfMeasure": {"unit": unit}}


async def session_16(server: Server) -> None:
    async with connected(server.ws, "tx16", "1.6") as cp:
        started = await cp.call(call16.StartTransaction(
            connector_id=1, id_tag="CARD-16", meter_start=12_000,
            timestamp="2026-03-01T10:00:00Z"))
        tx = started.transaction_id
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
            "timestamp": "2026-03-01T10:30:00Z",
            "sampledValue": [register(15.5, "kWh", "Sample.Periodic", "1.6")]}]))
        await cp.call(call16.StopTransaction(
            transaction_id=tx, meter_stop=19_250, timestamp="2026-03-01T11:00:00Z",
            reason="EVDisconnected"))


async def session_2x(server: Server, version: str) -> None:
    module = call201 if version == "2.0.1" else call21
    sid = "tx201" if version == "2.0.1" else "tx21"
    async with connected(server.ws, sid, version) as cp:
        def event(kind: str, seq: int, at: str, **extra: Any) -> Any:
            return module.TransactionEvent(
                event_type=kind, timestamp=at, trigger_reason="Authorized", seq_no=seq,
                transaction_info={"transactionId": f"{sid}-A", **extra.pop("info", {})},
                **extra)

        await cp.call(event("Started", 0, "2026-03-01T10:00:00Z",
                            id_token={"idToken": "CARD-2X", "type": "ISO14443"},
                            evse={"id": 1, "connectorId": 1},
                            info={"chargingState": "Charging"},
                            meter_value=[{"timestamp": "2026-03-01T10:00:00Z", "sampledValue": [
                                register(2.0, "kWh", "Transaction.Begin", version)]}]))
        await cp.call(event("Ended", 1, "2026-03-01T10:45:00Z",
                            info={"stoppedReason": "EVDisconnected", "chargingState": "Idle"},
                            meter_value=[{"timestamp": "2026-03-01T10:45:00Z", "sampledValue": [
                                register(9500, "Wh", "Transaction.End", version)]}]))


async def test_sessions_of_every_version_in_the_api_with_their_energy(
    ledger_server: Server,
) -> None:
    await session_16(ledger_server)
    await session_2x(ledger_server, "2.0.1")
    await session_2x(ledger_server, "2.1")

    def get(path: str, **params: Any) -> Any:
        answer = api(ledger_server, "GET", path, params=params)
        assert answer.status_code == 200, answer.text
        return answer

    energies = {}
    for sid in ("tx16", "tx201", "tx21"):
        (record,) = get("/api/v1/transactions", stationId=sid).json()["transactions"]
        assert record["status"] == "completed" and record["stopReason"] == "EVDisconnected"
        energies[sid] = record["energyWh"]
        assert get(f"/api/v1/transactions/{record['key']}").json() == record
    assert energies == {"tx16": 7250, "tx201": 7500, "tx21": 7500}

    page = get("/api/v1/transactions", limit=2).json()
    rest = get("/api/v1/transactions", limit=2, cursor=page["next"]).json()
    keys = [r["key"] for r in page["transactions"] + rest["transactions"]]
    assert len(keys) == 3 == len(set(keys)) and rest["next"] is None

    lines = get("/api/v1/exports/transactions", since="2026-03-01T00:00:00Z",
                until="2026-03-02T00:00:00Z").text.splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(keys)
    table = list(csv.DictReader(io.StringIO(
        get("/api/v1/exports/transactions", format="csv", idToken="CARD-2X").text)))
    assert [(row["stationId"], row["energyWh"]) for row in table] == [
        ("tx201", "7500.0"), ("tx21", "7500.0")]

    for bad in ({"since": "yesterday"}, {"cursor": "nope"}, {"status": "paid"},
                {"stationid": "tx16"}):
        assert api(ledger_server, "GET", "/api/v1/transactions",
                   params=bad).status_code == 422, bad
    assert api(ledger_server, "GET", "/api/v1/transactions/16:0").status_code == 404


def fleet_until_killed(server: Server, stations: int, acknowledged: int) -> list[dict[str, Any]]:
    """Stations in sessions (start, meter values, stop, again) until `acknowledged` answers
    came back; then `kill -9` of the server. Returns what each answer acknowledged."""
    acks: list[dict[str, Any]] = []
    enough = asyncio.Event()

    async def station(n: int) -> None:
        with contextlib.suppress(Exception):  # the server dies under it
            async with connected(server.ws, f"fleet-{n}", "1.6") as cp:
                for round_ in range(1000):
                    at = f"2026-03-01T10:{round_ % 60:02d}:{n:02d}Z"
                    started = await cp.call(call16.StartTransaction(
                        connector_id=1, id_tag=f"T{n}", meter_start=round_ * 100,
                        timestamp=at))
                    tx = started.transaction_id
                    acks.append({"key": f"16:{tx}", "ended": False})
                    await cp.call(call16.StopTransaction(
                        transaction_id=tx, meter_stop=round_ * 100 + 50, timestamp=at))
                    acks.append({"key": f"16:{tx}", "ended": True})
                    if len(acks) >= acknowledged:
                        enough.set()

    async def run() -> None:
        tasks = [asyncio.create_task(station(n)) for n in range(stations)]
        await asyncio.wait_for(enough.wait(), 60)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        for task in tasks:  # calls in flight would wait out their timeout: no answer comes
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    return list(acks)


async def test_kill_9_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "first").mkdir()
    first = start_server(tmp_path / "first", STATIONS, "--data-dir", str(data))
    acks = await asyncio.to_thread(fleet_until_killed, first, 20, 400)
    first.proc.wait(10)
    first.log_file.close()
    assert len(acks) >= 400

    (tmp_path / "second").mkdir()
    second = start_server(tmp_path / "second", STATIONS, "--data-dir", str(data))
    try:
        exported = await asyncio.to_thread(api, second, "GET", "/api/v1/exports/transactions")
        records = [json.loads(line) for line in exported.text.splitlines()]
        status = {r["key"]: r["status"] for r in records}
        assert len(status) == len(records)  # one record per transaction
        for ack in acks:
            assert ack["key"] in status, ack
            if ack["ended"]:
                assert status[ack["key"]] == "completed", ack
        # The ids given after the restart do not reuse any given before it.
        async with connected(second.ws, "fleet-0", "1.6") as cp:
            started = await cp.call(call16.StartTransaction(
                connector_id=1, id_tag="T", meter_start=0, timestamp="2026-03-02T00:00:00Z"))
        assert f"16:{started.transaction_id}" not in status
    finally:
        stop_server(second)


def test_while_redis_is_down_transaction_messages_are_refused_then_retried(
        tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis", durable=True).start()
    pod = start_server(tmp_path, STATIONS, "--redis-url", store.url)
    try:
        asyncio.run(_refused_then_retried(pod, store))
        exported = api(pod, "GET", "/api/v1/exports/transactions", params={"stationId": "tx201"})
        (record,) = [json.loads(line) for line in exported.text.splitlines()]
        # Each message once: nothing lost, nothing doubled by the retry.
        assert record["status"] == "completed" and record["duplicates"] == 0
        assert record["missingSeqNos"] == [] and record["energyWh"] == 500
        # The stream has each change once, with its idempotency key: not the refused message.
        client = redis.Redis.from_url(store.url)
        try:
            def billing() -> list[tuple[str, str]]:
                return [(f[b"action"].decode(), json.loads(f[b"payload"])["idempotencyKey"])
                        for _, f in client.xrange("csms:events")
                        if f[b"action"].startswith(b"Transaction")
                        and f[b"action"] != b"TransactionEvent"]

            wait_until(lambda: len(billing()) >= 3, what="the billing events")
            assert billing() == [("TransactionStarted", "tx201:R-1#1"),
                                 ("TransactionUpdated", "tx201:R-1#2"),
                                 ("TransactionEnded", "tx201:R-1#3")]
        finally:
            client.close()
    finally:
        stop_server(pod)
        store.stop()


async def _refused_then_retried(pod: Server, store: RedisServer) -> None:
    def event(kind: str, seq: int, wh: float) -> Any:
        return call201.TransactionEvent(
            event_type=kind, timestamp=f"2026-03-01T10:0{seq}:00Z", trigger_reason="Authorized",
            seq_no=seq, transaction_info={"transactionId": "R-1"},
            meter_value=[{"timestamp": f"2026-03-01T10:0{seq}:00Z",
                          "sampledValue": [{"value": wh}]}])

    async with connected(pod.ws, "tx201", "2.0.1") as cp:
        await cp.call(event("Started", 0, 1000))
        store.stop()
        with pytest.raises(InternalError, match="could not be stored"):
            await cp.call(event("Updated", 1, 1200), suppress=False)
        store.start()  # its AOF brings back what it had acknowledged

        async def retried() -> bool:  # as a station does, until the central system takes it
            try:
                await cp.call(event("Updated", 1, 1200), suppress=False)
            except InternalError:
                return False
            return True

        await eventually(retried, 15)
        await cp.call(event("Ended", 2, 1500))


async def test_a_queued_command_and_station_state_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "first").mkdir()
    first = start_server(tmp_path / "first", STATIONS, "--data-dir", str(data))
    async with connected(first.ws, "fleet-3", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="Acme",
                                              charge_point_model="Q1"))

    def written() -> bool:  # station state is written behind, within half a second
        with contextlib.closing(sqlite3.connect(data / "csms.sqlite3")) as db:
            return bool(db.execute("SELECT count(*) FROM stations WHERE id = 'fleet-3' AND "
                                   "state LIKE '%Q1%'").fetchone()[0])

    await asyncio.to_thread(wait_until, written, 5, "fleet-3's state on disk")
    queued = await asyncio.to_thread(api, first, "POST", "/api/v1/stations/fleet-3/calls",
                                     json={"action": "Reset", "payload": {"type": "Soft"},
                                           "queue": True})
    assert queued.status_code == 202, queued.text
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    first.log_file.close()
    (tmp_path / "second").mkdir()
    second = start_server(tmp_path / "second", STATIONS, "--data-dir", str(data))
    try:
        view = (await asyncio.to_thread(api, second, "GET", "/api/v1/stations/fleet-3")).json()
        assert view["boot"] == {"vendor": "Acme", "model": "Q1"} and not view["connected"]
        location = queued.headers["location"]
        assert (await asyncio.to_thread(api, second, "GET", location)).json()["status"] == \
            "queued"
        async with connected(second.ws, "fleet-3", "1.6"):  # it answers Reset: Accepted

            async def answered() -> bool:
                view = (await asyncio.to_thread(api, second, "GET", location)).json()
                return bool(view["status"] == "answered")

            await eventually(answered, 10)
    finally:
        stop_server(second)
