"""Gateway mode against websocket mode, both on one Redis.

Starts a redis-server, `csms serve --redis-url` (websocket mode), and `csms gateway` in front
of `csms serve --mode gateway` (gateway mode), all pinned to cpu0, then from cpu1:
  closed  bench/driver.py --mode closed (`--stations` 1.6 stations, one CALL outstanding
          each, `--duration` s) against each mode: station CALLs/s and their latency under
          that load; then one station alone: the latency of a CALL with no queue
  api     one API call (Reset) at a time to a connected station that answers at once,
          `--samples` each: p50/p99 per mode, and the p50 gateway mode adds

    python bench/gateway_bench.py [--stations 200] [--duration 10] [--samples 1000]

Prints a markdown table, then one JSON line.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from cluster_bench import HttpClient, free_port, percentile, station, wait_ready

VENV_BIN = Path(sys.executable).parent
DRIVER = Path(__file__).parent / "driver.py"


def on_cpu0(*argv: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def start(folder: Path) -> tuple[list["subprocess.Popen[bytes]"], dict[str, int], list[int]]:
    """Redis, the websocket-mode server, the gateway and its backend: (processes, where
    stations connect per mode, the ports whose /readyz says they are up)."""
    redis_port, ws, backend, gateway = (free_port() for _ in range(4))
    redis = f"redis://127.0.0.1:{redis_port}/0"
    procs = [on_cpu0(shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                     "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(folder))]
    time.sleep(0.3)
    common = ["--host", "127.0.0.1", "--accept-unknown", "--log-level", "warning"]
    procs.append(on_cpu0(str(VENV_BIN / "csms"), "serve", "--port", str(ws), *common,
                         "--redis-url", redis, "--redis-prefix", "ws:"))
    procs.append(on_cpu0(str(VENV_BIN / "csms"), "serve", "--port", str(backend), *common,
                         "--redis-url", redis, "--redis-prefix", "gw:", "--mode", "gateway"))
    procs.append(on_cpu0(str(VENV_BIN / "csms"), "gateway", "--host", "127.0.0.1", "--port",
                         str(gateway), "--backend", f"http://127.0.0.1:{backend}",
                         "--log-level", "warning"))
    return procs, {"websocket": ws, "gateway": gateway}, [ws, backend, gateway]


def closed(port: int, stations: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(["taskset", "-c", "1", sys.executable, str(DRIVER), "--url",
                          f"ws://127.0.0.1:{port}/ocpp/{{id}}", "--mode", "closed",
                          "--version", "1.6", "--stations", str(stations),
                          "--duration", str(duration)],
                         capture_output=True, text=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def api_latency(station_port: int, api_port: int, sid: str, samples: int) -> list[float]:
    ready, counter = asyncio.Event(), [0, 1]
    task = asyncio.create_task(station(f"ws://127.0.0.1:{station_port}/ocpp", sid, ready,
                                       counter))
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.5)  # the connection recorded
    client = HttpClient("127.0.0.1", api_port)
    body = orjson.dumps({"action": "Reset", "payload": {"type": "Soft"}})
    out = []
    for n in range(samples + 100):
        begin = time.perf_counter()
        status, reply = await client.request(b"POST", f"/api/v1/stations/{sid}/calls".encode(),
                                             body)
        if status != 200:
            raise RuntimeError(f"{status} {reply[:200]!r}")
        if n >= 100:  # warm-up done
            out.append((time.perf_counter() - begin) * 1000)
    task.cancel()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--samples", type=int, default=1000)
    args = p.parse_args()
    os.sched_setaffinity(0, {1})
    folder = Path(tempfile.mkdtemp(prefix="csms-gateway-bench-"))
    procs, entry, ready_ports = start(folder)
    r: dict[str, Any] = {}
    try:
        for port in ready_ports:
            uvloop.run(wait_ready(port, b"/readyz"))
        api_port = {"websocket": entry["websocket"], "gateway": ready_ports[1]}
        for mode in ("websocket", "gateway"):
            loop = closed(entry[mode], args.stations, args.duration)
            alone = closed(entry[mode], 1, min(args.duration, 3.0))
            lat = uvloop.run(api_latency(entry[mode], api_port[mode], f"API-{mode}",
                                         args.samples))
            r[mode] = {"calls_per_s": loop["rate_per_s"], "p50_ms": loop["p50_ms"],
                       "p99_ms": loop["p99_ms"], "errors": loop["call_errors"],
                       "alone_p50_ms": alone["p50_ms"], "alone_p99_ms": alone["p99_ms"],
                       "api_p50_ms": round(statistics.median(lat), 3),
                       "api_p99_ms": round(percentile(lat, 0.99), 3)}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    ws, gw = r["websocket"], r["gateway"]
    r["calls_ratio"] = round(gw["calls_per_s"] / ws["calls_per_s"], 2)
    r["station_p50_added_ms"] = round(gw["alone_p50_ms"] - ws["alone_p50_ms"], 3)
    r["api_p50_added_ms"] = round(gw["api_p50_ms"] - ws["api_p50_ms"], 3)
    print(f"| mode | station calls/s ({args.stations}) | p50 ms | p99 ms | errors | "
          "one station p50 ms | p99 ms | API call p50 ms | p99 ms |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for mode in ("websocket", "gateway"):
        m = r[mode]
        print(f"| {mode} | {m['calls_per_s']} | {m['p50_ms']} | {m['p99_ms']} | "
              f"{m['errors']} | {m['alone_p50_ms']} | {m['alone_p99_ms']} | "
              f"{m['api_p50_ms']} | {m['api_p99_ms']} |")
    print(f"\ngateway / websocket station calls/s: **{r['calls_ratio']}**; the gateway adds "
          f"{r['station_p50_added_ms']} ms at p50 to a station's CALL (one station alone) "
          f"and {r['api_p50_added_ms']} ms to an API call to a station")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
