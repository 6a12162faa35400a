"""Bill from the csms event stream: a Redis Streams consumer group, each transaction change
processed exactly once.

    python examples/event_consumer.py redis://127.0.0.1:6379/0 [group] [consumer]

Every entry has the fields station, version, action, payload (JSON) and time (Unix seconds).
The ledger's changes are the actions TransactionStarted, TransactionUpdated and
TransactionEnded, the same for OCPP 1.6, 2.0.1 and 2.1: their payload is the transaction
record (`transaction`) and its `idempotencyKey`, which names the change.

Delivery is at least once: an entry not acknowledged (the consumer stopped halfway) comes
again. Processing is exactly once because the consumer keeps the keys it has handled and
skips a key it has seen; a real one keeps them in its own database, in the same database
transaction as the billing record it writes. Here they are a set in Redis.
"""

import json
import sys

import redis

STREAM = "csms:events"
BILLING = ("TransactionStarted", "TransactionUpdated", "TransactionEnded")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    group = sys.argv[2] if len(sys.argv) > 2 else "billing"
    consumer = sys.argv[3] if len(sys.argv) > 3 else "billing-1"
    client = redis.Redis.from_url(url, decode_responses=True)
    seen = f"{group}:processed"  # the idempotency keys handled
    try:
        client.xgroup_create(STREAM, group, id="0", mkstream=True)
    except redis.ResponseError as exc:  # BUSYGROUP: it exists already
        if "BUSYGROUP" not in str(exc):
            raise
    pending = "0"  # first what this consumer had but did not acknowledge, then new entries
    while True:
        reply = client.xreadgroup(group, consumer, {STREAM: pending}, count=100, block=5000)
        entries = reply[0][1] if reply else []
        if pending == "0" and not entries:
            pending = ">"
            continue
        for entry_id, fields in entries:
            if fields["action"] in BILLING:
                change = json.loads(fields["payload"])
                if client.sadd(seen, change["idempotencyKey"]):  # 0: handled already
                    tx = change["transaction"]
                    print(fields["action"], change["idempotencyKey"], tx["stationId"],
                          tx["status"], tx["energyWh"], flush=True)
            client.xack(STREAM, group, entry_id)


if __name__ == "__main__":
    main()
