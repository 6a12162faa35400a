"""`make bench`: csms against its peers, server pinned to cpu0 and load on cpu1.

With ../shared/bench present (the peer servers and their load generator), every scenario
runs the peers and csms in the same run and reports csms as ratios of them: absolute figures
drift on shared machines, ratios much less. Without it, csms runs alone against
bench/driver.py and the figures are absolute.

  closed   200 stations, one call outstanding each, 70% MeterValues / 20% Heartbeat /
           10% StatusNotification (OCPP 1.6 and 2.0.1)
  paced    10,000 stations, one call each every 5 s
  idle     19,000 stations, a Heartbeat each every 30 s: RSS per connection, heartbeat p99
  scale    closed loop at 1,000, 5,000 and 19,000 stations: calls/s and RSS
  cluster  three pods and Redis: API call latency same-pod vs cross-pod, and API calls/s
           through three pods (bench/cluster_bench.py; csms alone, no peer has it)
  gateway  gateway mode against websocket mode: station CALLs/s through csms gateway and a
           backend, and the latency the gateway adds (bench/gateway_bench.py)
  tracing  the closed loop (1.6) with tracing off, with a 1% ratio sampler and with every
           call sampled, exporting over OTLP/HTTP to a sink (bench/otlp_sink.py)
  ledger   the closed loop (200 stations, 1.6 and 2.0.1, bench/driver.py) with the standard
           mix, then with every call a transaction message, kept in memory and in SQLite
           (--data-dir: durable before each answer, group-committed); csms alone

    python bench/run.py [--quick] [--only closed,paced,idle,scale,cluster,gateway,tracing,ledger]
                        [--out FILE]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
VENV_BIN = Path(sys.executable).parent
CSMS = (f"{VENV_BIN}/csms serve --host 127.0.0.1 --port {{port}} --accept-unknown "
        "--log-level warning")
CSMS_ENTRY = f"csms@/ocpp={CSMS}"


def sh(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    sys.stderr.write(out.stdout)
    return out.stdout


def table(text: str) -> list[dict[str, str]]:
    """The peer scripts print a header line and one row per server."""
    lines = [line.split() for line in text.strip().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    return [dict(zip(header, row, strict=False)) for row in rows if len(row) == len(header)]


def ratio(rows: list[dict[str, str]], column: str, name: str, peer: str) -> str:
    try:
        ours = float(next(r for r in rows if r["server"] == name)[column])
        theirs = float(next(r for r in rows if r["server"] == peer)[column])
    except (StopIteration, ValueError, KeyError):
        return "n/a"
    return f"{ours / theirs:.2f}"


def markdown(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def closed(quick: bool) -> str:
    secs = "5" if quick else "10"
    report = ["## Closed loop, 200 stations\n"]
    for version in ("1.6", "2.0.1"):
        cmd = ["bash", str(SHARED / "peers_bench.sh"), version, "200", secs, CSMS_ENTRY]
        rows = table(sh(cmd))
        report.append(f"`bench/peers_bench.sh {version} 200 {secs} \"{CSMS_ENTRY}\"`\n")
        report.append(markdown(rows))
        report.append(
            f"csms / raw ASGI responder: **{ratio(rows, 'calls/s', 'csms', 'raw-asgi-uvicorn')}**"
            f"; / ocpp-rpc (Node): {ratio(rows, 'calls/s', 'csms', 'ocpp-rpc-node')}"
            f"; / ocpp+websockets: {ratio(rows, 'calls/s', 'csms', 'ocpp+websockets')}"
            f"; / ocpp-asgi 0.4: {ratio(rows, 'calls/s', 'csms', 'ocpp-asgi-0.4')}\n")
    return "\n".join(report)


def paced(quick: bool) -> str:
    n, secs = ("5000", "15") if quick else ("10000", "30")
    cmd = ["bash", str(SHARED / "paced_bench.sh"), n, "5", secs, "1.6", CSMS_ENTRY]
    rows = table(sh(cmd))
    return (f"## Paced fleet, {n} stations, one call each per 5 s\n\n"
            f"`bench/paced_bench.sh {n} 5 {secs} 1.6 \"{CSMS_ENTRY}\"`\n\n" + markdown(rows))


def idle(quick: bool) -> str:
    n = "10000" if quick else "19000"
    raw = f"raw-asgi-uvicorn=/tmp/bench-venv/bin/python {SHARED}/peers/raw_asgi_server.py {{port}}"
    cmd = ["bash", str(SHARED / "conn_bench.sh"), n, "1.6", raw, CSMS_ENTRY]
    rows = table(sh(cmd, env={"PEERS": "0"}))
    return (f"## Idle fleet, {n} stations (Heartbeat every 30 s)\n\n"
            f"`PEERS=0 bench/conn_bench.sh {n} 1.6 \"{raw}\" \"{CSMS_ENTRY}\"`\n\n"
            + markdown(rows) + "\ncsms / raw KB per connection: "
            + f"**{ratio(rows, 'kb_per_conn', 'csms', 'raw-asgi-uvicorn')}**\n")


def scale(quick: bool) -> str:
    sizes = "1000 5000" if quick else "1000 5000 19000"
    # Our driver connects the whole fleet before the closed loop starts; the shared load
    # generator starts calling while others still connect and fails above ~5,000 stations.
    load = [sys.executable, str(ROOT / "bench" / "driver.py")]
    cmd = ["bash", str(ROOT / "bench" / "scale_bench.sh"), CSMS, *load]
    rows = table(sh(cmd, env={"SIZES": sizes}))
    return ("## Scaling: closed loop at growing fleet sizes (csms alone)\n\n"
            f"`SIZES=\"{sizes}\" bench/scale_bench.sh \"{CSMS}\" python bench/driver.py`\n\n"
            + markdown(rows))


def script(name: str, title: str, quick: bool) -> str:
    """A section from one of bench/'s own scripts (its markdown; not its JSON line)."""
    cmd = [sys.executable, str(ROOT / "bench" / name),
           "--duration", "5" if quick else "10", "--samples", "500" if quick else "2000"]
    report = "\n".join(line for line in sh(cmd).splitlines() if not line.startswith("{"))
    return f"## {title}\n\n`{' '.join(cmd[1:])}`\n\n{report}\n"


def cluster(quick: bool) -> str:
    return script("cluster_bench.py",
                  "Cluster: API calls routed through Redis (3 pods + Redis on cpu0)", quick)


def gateway(quick: bool) -> str:
    return script("gateway_bench.py", "Gateway mode against websocket mode (csms gateway + "
                  "a backend, or one csms serve; Redis; all on cpu0)", quick)


def tracing(quick: bool) -> str:
    """What spans cost on the hot path: off, 1% sampled, all sampled, interleaved twice in
    one run (this machine's throughput drifts by more than the difference between them)."""
    secs = "5" if quick else "10"
    port = 9390
    sink = subprocess.Popen(["taskset", "-c", "1", sys.executable,
                             str(ROOT / "bench" / "otlp_sink.py"), str(port)])
    otel = f"env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{port} OTEL_TRACES_SAMPLER="
    modes = {"off": "", "1pct": f"{otel}parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 ",
             "all": f"{otel}always_on "}
    entries = [f"csms-{mode}{n}@/ocpp={prefix}{CSMS}"
               for n in ("", "-2") for mode, prefix in modes.items()]
    try:
        rows = table(sh(["bash", str(SHARED / "peers_bench.sh"), "1.6", "200", secs, *entries],
                        env={"PEERS": "0"}))
    finally:
        sink.terminate()
        sink.wait(10)

    def rate(mode: str) -> float:
        found = [float(r["calls/s"]) for r in rows if r["server"].startswith(f"csms-{mode}")]
        return sum(found) / len(found) if found else float("nan")

    return ("## Tracing: the closed loop (1.6, 200 stations) off, 1% sampled, all sampled\n\n"
            f"`PEERS=0 bench/peers_bench.sh 1.6 200 {secs} csms-off csms-1pct csms-all` twice, "
            "interleaved (OTLP/HTTP to bench/otlp_sink.py on cpu1)\n\n" + markdown(rows)
            + f"\nMean calls/s, 1% / off: **{rate('1pct') / rate('off'):.2f}**; all / off: "
            f"**{rate('all') / rate('off'):.2f}**\n")


def drive(port: int, mode: str, version: str, stations: int, seconds: str,
          mix: str = "standard") -> dict[str, Any]:
    out = subprocess.run(["taskset", "-c", "1", sys.executable,
                          str(ROOT / "bench" / "driver.py"), "--url",
                          f"ws://127.0.0.1:{port}/ocpp/{{id}}", "--mode", mode,
                          "--version", version, "--stations", str(stations),
                          "--duration", seconds, "--mix", mix],
                         capture_output=True, text=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def serving(port: int, extra: str = "") -> "subprocess.Popen[bytes]":
    server = subprocess.Popen(["taskset", "-c", "0", "bash", "-c", "ulimit -n 20000; exec "
                               + CSMS.replace("{port}", str(port)) + extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    return server


def ledger(quick: bool) -> str:
    """What durability costs: the same closed loop with the standard mix, with transaction
    messages only (memory ledger), and with them durable in SQLite."""
    secs = "5" if quick else "10"
    rows: list[dict[str, str]] = []
    rates: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as data:
        runs = [("standard", "memory", ""), ("transactions", "memory", ""),
                ("transactions", "sqlite", f" --data-dir {data}/{{version}}")]
        for port, (version, (mix, store, extra)) in enumerate(
                [(v, r) for v in ("1.6", "2.0.1") for r in runs], start=9870):
            server = serving(port, extra.replace("{version}", version))
            try:
                r = drive(port, "closed", version, 200, secs, mix)
            finally:
                server.terminate()
                server.wait(15)
            rates[(version, f"{mix}-{store}")] = float(r["rate_per_s"])
            rows.append({"version": version, "mix": mix, "ledger": store,
                         "calls/s": str(r["rate_per_s"]), "p50_ms": str(r["p50_ms"]),
                         "p99_ms": str(r["p99_ms"]), "errors": str(r["call_errors"])})
    lines = []
    for version in ("1.6", "2.0.1"):
        base = rates[(version, "standard-memory")]
        memory, sqlite = (rates[(version, "transactions-memory")],
                          rates[(version, "transactions-sqlite")])
        lines.append(f"{version}: transactions / standard mix **{memory / base:.2f}**; "
                     f"durable (SQLite) / memory **{sqlite / memory:.2f}**")
    return ("## Ledger: the closed loop (200 stations) with transaction messages\n\n"
            f"`bench/driver.py --mode closed --stations 200 --duration {secs} --mix "
            "standard|transactions` against `csms serve` with and without `--data-dir`\n\n"
            + markdown(rows) + "\n" + "  \n".join(lines) + "\n")


def standalone(quick: bool) -> str:
    rows = []
    for port, (mode, version, n) in enumerate(
            [("closed", "1.6", 200), ("closed", "2.0.1", 200), ("paced", "1.6", 5000)],
            start=9850):
        server = serving(port)
        try:
            r = drive(port, mode, version, n, "5" if quick else "10")
        finally:
            server.terminate()
            server.wait(15)
        rows.append({"mode": mode, "version": version, "stations": str(n),
                     "calls/s": str(r["rate_per_s"]), "p50_ms": str(r["p50_ms"]),
                     "p99_ms": str(r["p99_ms"]), "errors": str(r["call_errors"])})
    return ("## csms alone (../shared/bench not found: absolute figures, no peers)\n\n"
            + markdown(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter runs, smaller fleets")
    p.add_argument("--only",
                   default="closed,paced,idle,scale,cluster,gateway,tracing,ledger")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.md"))
    args = p.parse_args()
    if not shutil.which("taskset"):
        sys.exit("bench: taskset (util-linux) is needed to pin server and load to cores")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    parts = [f"# csms benchmark, {started}\n",
             "Server pinned to cpu0, load generator to cpu1; default settings (schema "
             "validation, metrics and events on), `--accept-unknown`.\n"]
    if SHARED.exists():
        sh(["bash", str(SHARED / "setup_peers.sh")])
        runners = {"closed": closed, "paced": paced, "idle": idle, "scale": scale,
                   "cluster": cluster, "gateway": gateway, "tracing": tracing,
                   "ledger": ledger}
        for name in args.only.split(","):
            parts.append(runners[name](args.quick))
    else:
        parts.append(standalone(args.quick))
        for name, runner in (("cluster", cluster), ("gateway", gateway), ("ledger", ledger)):
            if name in args.only:
                parts.append(runner(args.quick))
    report = "\n".join(parts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
