"""A lean OCPP-J load driver (picows + uvloop), for `make bench` where the shared peer
harness is absent. One process, callbacks only, no task per call.

  closed  one CALL outstanding per station: throughput and its latency
  paced   one CALL per station every --interval seconds
  idle    boot, then a Heartbeat every --interval seconds

--mix transactions makes every call a transaction message: sessions of a start, three
meter-value updates and an end (1.6 StartTransaction, MeterValues with its id,
StopTransaction; 2.0.1 TransactionEvent Started, Updated x3, Ended), each answered only once
the ledger holds it.

Prints one JSON object: connected, calls, errors, rate, latency percentiles (ms).
"""

import argparse
import asyncio
import itertools
import json
import random
import resource
import time
from typing import Any

import orjson
import picows
import uvloop

NOW = "2026-01-01T00:00:00Z"
CALLS = {
    "1.6": {
        "boot": ("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "L"}),
        "heartbeat": ("Heartbeat", {}),
        "status": ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                          "status": "Available"}),
        "meter": ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": NOW,
                  "sampledValue": [{"value": "1234.5", "unit": "Wh"}]}]}),
    },
    "2.0.1": {
        "boot": ("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "model": "L", "vendorName": "Bench"}}),
        "heartbeat": ("Heartbeat", {}),
        "status": ("StatusNotification", {"timestamp": NOW, "connectorStatus": "Available",
                                          "evseId": 1, "connectorId": 1}),
        "meter": ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": NOW,
                  "sampledValue": [{"value": 1234.5}]}]}),
    },
}
MIX = ["meter"] * 7 + ["heartbeat"] * 2 + ["status"]
SESSION = 5  # messages per transaction: start, three updates, end


def transaction_message(version: str, name: str, session: int, step: int,
                        tx_id: Any) -> tuple[str, dict[str, Any]]:
    """The `step`th message of a station's `session`th transaction."""
    wh = session * 10_000 + step * 1000
    if version == "1.6":
        if step == 0:
            return "StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": wh,
                                        "timestamp": NOW}
        if step < SESSION - 1:
            return "MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [{
                "timestamp": NOW, "sampledValue": [{"value": str(wh), "unit": "Wh"}]}]}
        return "StopTransaction", {"transactionId": tx_id, "meterStop": wh, "timestamp": NOW}
    kind = "Started" if step == 0 else "Ended" if step == SESSION - 1 else "Updated"
    payload: dict[str, Any] = {
        "eventType": kind, "timestamp": NOW, "triggerReason": "MeterValuePeriodic",
        "seqNo": step, "transactionInfo": {"transactionId": f"{name}-{session}"},
        "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": wh}]}]}
    if step == 0:
        payload["idToken"] = {"idToken": "BENCH", "type": "Central"}
        payload["evse"] = {"id": 1, "connectorId": 1}
    return "TransactionEvent", payload


class Station(picows.WSListener):  # type: ignore[misc]
    def __init__(self, run: "Run", rng: random.Random, name: str) -> None:
        self.run, self.rng, self.name = run, rng, name
        self.ids = itertools.count()
        self.sent: tuple[str, float] | None = None
        self.transport: Any = None
        self.session, self.step, self.tx_id = 0, 0, None

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport
        self.call("boot")

    def call(self, key: str) -> None:
        self.send(*self.run.calls[key])

    def transaction(self) -> None:
        self.send(*transaction_message(self.run.version, self.name, self.session, self.step,
                                       self.tx_id))
        self.step += 1
        if self.step == SESSION:
            self.session, self.step = self.session + 1, 0

    def send(self, action: str, payload: dict[str, Any]) -> None:
        uid = str(next(self.ids))
        self.sent = (uid, time.perf_counter())
        self.transport.send(picows.WSMsgType.TEXT, orjson.dumps([2, uid, action, payload]))

    def next(self) -> None:
        if time.perf_counter() >= self.run.deadline:
            self.transport.send_close(picows.WSCloseCode.OK)
            self.transport.disconnect()
        elif self.run.mode == "idle":
            self.call("heartbeat")
        elif self.run.mix == "transactions":
            self.transaction()
        else:
            self.call(MIX[self.rng.randrange(len(MIX))])

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type != picows.WSMsgType.TEXT:
            return
        msg = orjson.loads(frame.get_payload_as_bytes())
        if msg[0] == 2:  # the central system calls us: accept whatever it is
            transport.send(picows.WSMsgType.TEXT, orjson.dumps([3, msg[1], {"status": "Accepted"}]))
            return
        if self.sent is None or msg[1] != self.sent[0]:
            return
        now = time.perf_counter()
        booted = self.sent[0] == "0"
        if msg[0] == 3 and "transactionId" in msg[2]:  # a 1.6 StartTransaction's answer
            self.tx_id = msg[2]["transactionId"]
        if not booted and now >= self.run.measure_from:
            self.run.latencies.append(now - self.sent[1])
            if msg[0] != 3:
                self.run.errors += 1
        self.sent = None
        if self.run.mode == "closed":
            if booted and now < self.run.load_from:  # the whole fleet connects first
                asyncio.get_running_loop().call_later(self.run.load_from - now, self.next)
            else:
                self.next()
        else:
            delay = self.rng.random() * self.run.interval if booted else self.run.interval
            asyncio.get_running_loop().call_later(delay, self.next)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode, self.interval, self.mix = args.mode, args.interval, args.mix
        self.version = args.version
        self.calls = CALLS[args.version]
        start = time.perf_counter()
        self.load_from = start + args.stations / args.connect_rate + 1.0
        self.measure_from = self.load_from + args.warmup
        self.deadline = self.measure_from + args.duration
        self.latencies: list[float] = []
        self.errors = 0
        self.connected = 0
        self.failed = 0
        self.failures: list[str] = []


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    proto = "ocpp1.6" if args.version == "1.6" else "ocpp2.0.1"

    async def one(index: int) -> None:
        name = f"BENCH{index:06d}"
        url = args.url.replace("{id}", name)
        try:
            transport, _ = await picows.ws_connect(
                lambda: Station(run, random.Random(index), name), url,
                extra_headers={"Sec-WebSocket-Protocol": proto},
                websocket_handshake_timeout=30)
        except Exception as exc:
            run.failed += 1
            if len(run.failures) < 3:
                run.failures.append(repr(exc))
            return
        run.connected += 1
        await transport.wait_disconnected()

    tasks = []
    for index in range(args.stations):
        tasks.append(asyncio.create_task(one(index)))
        if index % 100 == 99:
            await asyncio.sleep(100 / args.connect_rate)
    await asyncio.gather(*tasks)
    lat = sorted(run.latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

    return {"mode": args.mode, "mix": args.mix, "version": args.version,
            "stations": args.stations,
            "connected": run.connected, "connect_failed": run.failed, "calls": len(lat),
            "call_errors": run.errors, "rate_per_s": round(len(lat) / args.duration, 1),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "failures": run.failures}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="websocket URL with {id}")
    p.add_argument("--version", choices=["1.6", "2.0.1"], default="1.6")
    p.add_argument("--mode", choices=["closed", "paced", "idle"], default="closed")
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connect-rate", type=float, default=1000.0)
    p.add_argument("--mix", choices=["standard", "transactions"], default="standard",
                   help="standard: 70%% MeterValues, 20%% Heartbeat, 10%% StatusNotification")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(uvloop.run(main(args))))
