"""Cluster mode: API calls routed through Redis to the pod that holds the station.

Starts a redis-server and three `csms serve --redis-url` pods (pinned to cpu0), connects
`--per-pod` stations directly to each pod (stations answer every CALL at once), then from
cpu1:
  latency     one API call at a time, `--samples` each: to the pod holding the station
              (same-pod) and to another pod (cross-pod); p50/p99 and the p50 added
  throughput  `--concurrency` API calls in flight for `--duration` s, each to a random pod
              for a random station (two in three cross-pod): API calls/s through 3 pods

    python bench/cluster_bench.py [--per-pod 30] [--samples 1000] [--duration 10]

Prints a markdown table, then one JSON line.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
import websockets

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(port: int, path: bytes = b"/readyz") -> None:
    for _ in range(200):
        try:
            status, _ = await HttpClient("127.0.0.1", port).request(b"GET", path)
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"port {port} not ready")


class HttpClient:
    """A minimal keep-alive HTTP/1.1 client: the load generator must not be the bottleneck."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: bytes, path: bytes, body: bytes = b"") -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(b"%s %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (method, path, len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return status, await reader.readexactly(length)


async def station(url: str, sid: str, ready: asyncio.Event, counter: list[int]) -> None:
    async with websockets.connect(f"{url}/{sid}", subprotocols=["ocpp1.6"],
                                  ping_interval=None) as ws:
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        async for text in ws:
            frame = orjson.loads(text)
            if frame[0] == 2:
                await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(pods: list[int], holder: dict[str, int], samples: int
                  ) -> dict[str, list[float]]:
    clients = {p: HttpClient("127.0.0.1", p) for p in pods}
    body = orjson.dumps({"action": "Reset", "payload": {"type": "Soft"}})
    out: dict[str, list[float]] = {"same-pod": [], "cross-pod": []}
    sids = list(holder)
    for n in range(samples * 2):
        sid = random.choice(sids)
        kind = "same-pod" if n % 2 else "cross-pod"
        port = holder[sid] if kind == "same-pod" else random.choice(
            [p for p in pods if p != holder[sid]])
        start = time.perf_counter()
        status, reply = await clients[port].request(
            b"POST", f"/api/v1/stations/{sid}/calls".encode(), body)
        elapsed = (time.perf_counter() - start) * 1000
        if status != 200:
            raise RuntimeError(f"{status} {reply[:200]!r}")
        if n >= 100:  # warm-up done
            out[kind].append(elapsed)
    return out


async def throughput(pods: list[int], holder: dict[str, int], concurrency: int,
                     duration: float) -> tuple[float, int]:
    body = orjson.dumps({"action": "Reset", "payload": {"type": "Soft"}})
    sids = list(holder)
    done, errors = [0], [0]
    end = time.monotonic() + duration

    async def worker() -> None:
        clients = {p: HttpClient("127.0.0.1", p) for p in pods}
        while time.monotonic() < end:
            status, _ = await clients[random.choice(pods)].request(
                b"POST", f"/api/v1/stations/{random.choice(sids)}/calls".encode(), body)
            done[0] += 1
            errors[0] += status != 200

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done[0] / (time.monotonic() - start), errors[0]


def start_cluster(folder: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    redis_port = free_port()
    procs = [subprocess.Popen(
        ["taskset", "-c", "0", shutil.which("redis-server") or "redis-server", "--port",
         str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(0.3)
    pods = [free_port() for _ in range(3)]
    for port in pods:
        procs.append(subprocess.Popen(
            ["taskset", "-c", "0", str(VENV_BIN / "csms"), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--accept-unknown", "--log-level", "warning",
             "--redis-url", f"redis://127.0.0.1:{redis_port}/0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs, pods


async def run(args: argparse.Namespace, pods: list[int]) -> dict[str, Any]:
    for port in pods:
        await wait_ready(port)
    holder = {f"B{p}-{n:03d}": p for p in pods for n in range(args.per_pod)}
    ready, counter = asyncio.Event(), [0, len(holder)]
    fleet = [asyncio.create_task(station(f"ws://127.0.0.1:{p}/ocpp", sid, ready, counter))
             for sid, p in holder.items()]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.0)  # ownership recorded
    lat = await latency(pods, holder, args.samples)
    rate, errors = await throughput(pods, holder, args.concurrency, args.duration)
    for task in fleet:
        task.cancel()
    same, cross = lat["same-pod"], lat["cross-pod"]
    return {
        "same_p50_ms": round(statistics.median(same), 3),
        "same_p99_ms": round(percentile(same, 0.99), 3),
        "cross_p50_ms": round(statistics.median(cross), 3),
        "cross_p99_ms": round(percentile(cross, 0.99), 3),
        "added_p50_ms": round(statistics.median(cross) - statistics.median(same), 3),
        "api_calls_per_s": round(rate), "errors": errors,
        "stations": len(holder), "concurrency": args.concurrency,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-pod", type=int, default=30)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    args = p.parse_args()
    os.sched_setaffinity(0, {1})
    folder = Path(tempfile.mkdtemp(prefix="csms-cluster-bench-"))
    procs, pods = start_cluster(folder)
    try:
        r = uvloop.run(run(args, pods))
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    print("| path | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| same-pod | {r['same_p50_ms']} | {r['same_p99_ms']} |")
    print(f"| cross-pod | {r['cross_p50_ms']} | {r['cross_p99_ms']} |")
    print(f"\ncross-pod adds {r['added_p50_ms']} ms at p50; {r['api_calls_per_s']} API "
          f"calls/s through 3 pods ({r['concurrency']} in flight, {r['errors']} errors)")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
