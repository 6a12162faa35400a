"""examples/event_consumer.py reads the stream with a consumer group, bills each
transaction change once (by its idempotency key, though delivered twice), acknowledges."""

import json
import subprocess
import sys
from pathlib import Path

import redis as sync_redis

from tests.polling import wait_until
from tests.redis_server import RedisServer

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "event_consumer.py"


def test_the_example_consumer_bills_each_change_once_and_acknowledges(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushdb()
    changes = [("Heartbeat", None, None), ("TransactionStarted", "16:7#1", None),
               ("TransactionEnded", "16:7#2", 800.0),
               ("TransactionEnded", "16:7#2", 800.0)]  # delivered twice
    for action, key, energy in changes:
        payload = {} if key is None else {"idempotencyKey": key, "transaction": {
            "stationId": "CP", "status": "completed" if energy else "active",
            "energyWh": energy}}
        client.xadd("csms:events", {"station": "CP", "version": "1.6", "action": action,
                                    "payload": json.dumps(payload), "time": "1.0"})
    out = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), redis_server.url], stdout=out)
    try:
        def done() -> bool:
            groups = client.xinfo_groups("csms:events")  # none until the consumer starts
            return bool(groups and groups[0]["entries-read"] == len(changes)
                        and groups[0]["pending"] == 0)

        wait_until(done, what="every entry read and acknowledged")
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()
        client.close()
    assert (tmp_path / "out.txt").read_text().splitlines() == [
        "TransactionStarted 16:7#1 CP active None",
        "TransactionEnded 16:7#2 CP completed 800.0"]
