"""Read csms events from the Redis Stream with a consumer group (at-least-once).

    python examples/event_consumer.py redis://127.0.0.1:6379/0 [group] [consumer]

Each entry has the fields station, version, action (an OCPP action, or connected /
disconnected), payload (JSON) and time (Unix seconds). A consumer acknowledges an entry
once it has handled it; unacknowledged entries are delivered again after a restart.
"""

import json
import sys

import redis

STREAM = "csms:events"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    group = sys.argv[2] if len(sys.argv) > 2 else "billing"
    consumer = sys.argv[3] if len(sys.argv) > 3 else "billing-1"
    client = redis.Redis.from_url(url, decode_responses=True)
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
            payload = json.loads(fields["payload"])
            if fields["action"] in ("StopTransaction", "TransactionEvent"):
                print(fields["time"], fields["station"], fields["action"], payload, flush=True)
            client.xack(STREAM, group, entry_id)


if __name__ == "__main__":
    main()
