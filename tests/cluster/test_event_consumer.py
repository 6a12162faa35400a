"""examples/event_consumer.py reads the stream with a consumer group and acknowledges."""

import json
import subprocess
import sys
from pathlib import Path

import redis as sync_redis

from tests.polling import wait_until
from tests.redis_server import RedisServer

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "event_consumer.py"


def test_the_example_consumer_prints_transactions_and_acknowledges(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushdb()
    for action, n in (("Heartbeat", 0), ("StopTransaction", 1), ("TransactionEvent", 2)):
        client.xadd("csms:events", {"station": "CP", "version": "1.6", "action": action,
                                    "payload": json.dumps({"n": n}), "time": "1.0"})
    out = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), redis_server.url], stdout=out)
    try:
        wait_until(lambda: len((tmp_path / "out.txt").read_text().splitlines()) == 2,
                   what="two transaction events printed")
        wait_until(lambda: client.xpending("csms:events", "billing")["pending"] == 0,
                   what="every entry acknowledged")
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()
        client.close()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert "StopTransaction {'n': 1}" in lines[0] and "TransactionEvent {'n': 2}" in lines[1]
