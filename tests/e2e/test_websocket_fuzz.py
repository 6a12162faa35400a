"""A seeded stream of mutated frames against a real `csms serve`, over its websocket.

Each fuzzed frame is followed by a Heartbeat CALL as a marker: every frame the server sends
before the marker's answer belongs to the fuzzed frame, and must be what the oracle says
(one answer per CALL, with the version's codes, nothing for replies and SENDs). The
connection must stay up throughout.
"""

import asyncio
import collections
import os
import random
import sys
from pathlib import Path

import orjson
import pytest
import websockets

from tests.e2e.conftest import start_server, stop_server
from tests.fuzzing.mutations import mutate
from tests.fuzzing.oracle import check
from tests.fuzzing.seeds import GOOD, SEEDS

FRAMES = int(os.environ.get("WS_FUZZ_FRAMES", "3000"))  # per version
STATIONS = """
apiVersion: csms.dev/v1alpha1
kind: ChargingStation
metadata: {name: fuzzed}
spec: {authorization: {acceptAll: true}}
"""


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.timeout(300)
async def test_mutated_frames_over_a_real_websocket_break_no_invariant(
    tmp_path: Path, version: str
) -> None:
    server = start_server(tmp_path, STATIONS)
    rng = random.Random(f"csms-{version}")
    seeds = SEEDS[version] + GOOD[version] * 3  # mostly real messages, mutated
    codes: collections.Counter[str] = collections.Counter()
    try:
        async with websockets.connect(f"{server.ws}/fuzzed", subprotocols=[f"ocpp{version}"],
                                      max_size=None) as ws:
            for n in range(FRAMES):
                frame = mutate(rng, seeds)
                marker = f"marker-{n}"
                await ws.send(frame)
                await ws.send(f'[2, "{marker}", "Heartbeat", {{}}]')
                sent: list[str] = []
                async with asyncio.timeout(10):
                    while True:
                        text = str(await ws.recv())
                        reply = orjson.loads(text)
                        if reply[1] == marker:
                            assert reply[0] == 3, reply
                            break
                        sent.append(text)
                check(version, frame, sent)
                for text in sent:
                    reply = orjson.loads(text)
                    codes[reply[2] if reply[0] == 4 else "CALLRESULT"] += 1
        assert ws.close_code == 1000  # closed by us, at the end: never by the server
    finally:
        stop_server(server)
    assert "Traceback" not in server.output() and "ERROR" not in server.output()
    print(f"\nwebsocket fuzz, OCPP {version}: {FRAMES} frames, answers {dict(codes)}",
          file=sys.__stderr__)
