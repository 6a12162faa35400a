"""The dashboards against real data: a real Prometheus scrapes two real `csms serve` pods
(cluster mode, a real Redis) and the operator while simulated fleets speak OCPP 1.6, 2.0.1
and 2.1, with refused handshakes, CALLERRORs, unexpected frames, a silent station, calls
across pods and a queued command. Each panel's queries, with the dashboard's variables
filled in, are asked of Prometheus; and each dashboard is drawn with matplotlib from the
same queries, for the README.

    python -m tests.grafana.live docs/dashboards    # the README's pictures
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

from dashboards.build import BOARDS, Board, Panel
from tests.e2e.conftest import Server, free_port, start_server, stop_server
from tests.kube_mock import KubeMock
from tests.polling import wait_until
from tests.redis_server import RedisServer

NAMESPACE = "csms"
CENTRAL_JOB, OPERATOR_JOB = "csms-internal", "csms/csms-operator"
RATE_INTERVAL = "30s"  # $__rate_interval for a 1 s scrape interval and a short run
STATIONS = "/apis/csms.dev/v1alpha1/namespaces/default/chargingstations"


@dataclass
class Answer:
    """One panel query's result: its series' labels, and the values over the run."""

    expr: str
    series: list[dict[str, str]]
    ranges: list[tuple[dict[str, str], list[tuple[float, float]]]] = field(default_factory=list)


def fill(expr: str, board: Board) -> str:
    job = OPERATOR_JOB if not board.with_pod else CENTRAL_JOB
    return (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$namespace", NAMESPACE)
            .replace("$job", job).replace("$pod", ".*"))


class Live:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pods: list[Server] = []
        self.kube: KubeMock | None = None
        self.redis: RedisServer | None = None
        self.prometheus_url = ""

    # -- the system under observation --------------------------------------------------

    def start(self) -> "Live":
        (self.folder / "redis").mkdir(parents=True)
        self.redis = RedisServer(self.folder / "redis").start()
        for name in ("a", "b"):
            (self.folder / name).mkdir()
            self.pods.append(start_server(
                self.folder / name, "", "--accept-unknown", "--redis-url", self.redis.url,
                "--call-timeout", "1", "--ping-interval", "0"))
        self.kube = KubeMock().start()
        config = self.kube.kubeconfig(self.folder / "kubeconfig")
        operator_port = free_port()
        self._spawn("operator", [sys.executable, "-m", "csms", "operator", "--liveness",
                                 f"http://127.0.0.1:{free_port()}/healthz"],
                    KUBECONFIG=str(config), CSMS_REDIS_URL=self.redis.url,
                    CSMS_OPERATOR_METRICS_PORT=str(operator_port),
                    CSMS_OPERATOR_STATUS_EVERY="1")
        self._prometheus(operator_port)
        return self

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **env})
        self.procs.append(proc)
        return proc

    def _prometheus(self, operator_port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "make test installs it (.ci/system-deps.sh: prometheus)"
        central = [{"targets": [f"127.0.0.1:{pod.port}"],
                    "labels": {"namespace": NAMESPACE, "pod": f"csms-central-{name}"}}
                   for name, pod in zip("ab", self.pods, strict=True)]
        operator = [{"targets": [f"127.0.0.1:{operator_port}"],
                     "labels": {"namespace": NAMESPACE, "pod": "csms-operator-0"}}]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [
                      {"job_name": CENTRAL_JOB, "static_configs": central},
                      {"job_name": OPERATOR_JOB, "static_configs": operator}]}
        path = self.folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        self._spawn("prometheus", [binary, f"--config.file={path}",
                                   f"--storage.tsdb.path={self.folder / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"])
        self.prometheus_url = f"http://127.0.0.1:{port}"

        def scraping() -> bool:
            # Starting, Prometheus answers 503 with a plain-text body: not JSON yet.
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                up = self.query("up")
                return len(up) == 3 and all(s["value"][1] == "1" for s in up)
            return False

        wait_until(scraping, 60, "Prometheus scraping two pods and the operator")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pod in self.pods:
            stop_server(pod)
        if self.kube is not None:
            self.kube.stop()
        if self.redis is not None:
            self.redis.stop()

    # -- what the fleet does -----------------------------------------------------------

    async def traffic(self, seconds: float) -> None:
        """Fleets of three versions, and every kind of trouble the dashboards show."""
        a, b = self.pods
        for version, pod in (("1.6", a), ("2.0.1", b), ("2.1", a)):
            prefix = "SIM" + version.replace(".", "") + "-"
            self._spawn(f"fleet-{version}", [
                sys.executable, "-m", "csms", "simulate", "--url", pod.ws, "--stations", "5",
                "--version", version, "--prefix", prefix, "--heartbeat", "1",
                "--session-every", "3", "--meter-every", "1", "--no-display"])
        assert self.kube is not None
        async with httpx.AsyncClient(base_url=self.kube.url) as kube:
            for name, spec in (("live-ok", {"authorization": {"acceptAll": True}}),
                               ("live-no-secret", {"securityProfile": 1,
                                                   "passwordSecretRef": {"name": "absent"}})):
                await kube.post(STATIONS, json={"apiVersion": "csms.dev/v1alpha1",
                                                "kind": "ChargingStation",
                                                "metadata": {"name": name}, "spec": spec})
        deadline = time.monotonic() + seconds
        async with websockets.connect(f"{a.ws}/ERR-1", subprotocols=["ocpp2.0.1"]) as bad, \
                websockets.connect(f"{b.ws}/SILENT-1", subprotocols=["ocpp1.6"]) as silent, \
                httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < deadline:
                await bad.send('[2, "e1", "Heartbeat", {"unexpected": 1}]')
                await bad.send('[2, "e2", "NoSuchAction", {}]')
                await bad.send('[3, "nobody-asked", {}]')
                with contextlib.suppress(websockets.InvalidStatus):
                    async with websockets.connect(f"{a.ws}/bad:id"):
                        pass
                async with websockets.connect(f"{b.ws}/BRIEF-1", subprotocols=["ocpp1.6"]):
                    pass  # a station that comes and goes: a disconnect
                # Across pods: a silent station times out, a simulated one answers.
                await client.post(f"{a.http}/api/v1/stations/SILENT-1/calls", json={
                    "action": "Reset", "payload": {"type": "Soft"}, "timeout": 1})
                await client.post(f"{a.http}/api/v1/stations/SIM201-0001/calls", json={
                    "action": "Reset", "payload": {"type": "Immediate"}})
                await client.post(f"{b.http}/api/v1/stations/SIM16-0001/calls", json={
                    "action": "Reset", "payload": {"type": "Soft"}, "queue": True})
                while True:  # drain what csms sent to the scripted stations
                    try:
                        await asyncio.wait_for(bad.recv(), 0.05)
                    except TimeoutError:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(silent.recv(), 0.05)  # and never answered

    # -- what Prometheus says ----------------------------------------------------------

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr},
                           timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def query_range(self, expr: str, seconds: float) -> list[dict[str, Any]]:
        end = time.time()
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query_range", params={
            "query": expr, "start": end - seconds, "end": end, "step": "1"}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def answers(self, board: Board, seconds: float) -> list[tuple[Panel, list[Answer]]]:
        found = []
        for panel in board.panels:
            answers = []
            for query in panel.queries:
                expr = fill(query.expr, board)
                result = self.query(expr)
                answer = Answer(expr, [r["metric"] for r in result])
                answer.ranges = [(r["metric"], [(float(t), float(v)) for t, v in r["values"]])
                                 for r in self.query_range(expr, seconds)]
                answers.append(answer)
            found.append((panel, answers))
        return found


LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend_labels(legend: str) -> set[str]:
    return set(LEGEND.findall(legend))


def legend(template: str, labels: dict[str, str]) -> str:
    """A series' name as Grafana writes it from the panel's legend format."""
    return LEGEND.sub(lambda m: labels.get(m.group(1), ""), template)


def draw(board: Board, answers: list[tuple[Panel, list[Answer]]], path: Path) -> None:
    """The dashboard as Grafana lays it out (two panels a row), from the same queries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(answers) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(14, 3.2 * rows), squeeze=False)
    figure.suptitle(board.title, fontsize=14, x=0.01, ha="left")
    start = min((points[0][0] for _, a in answers for x in a for _, points in x.ranges
                 if points), default=time.time())
    for ax, (panel, results) in zip(axes.flat, answers, strict=False):
        ax.set_title(f"{panel.title} ({panel.unit})", fontsize=10, loc="left")
        for query, answer in zip(panel.queries, results, strict=True):
            for labels, points in answer.ranges:
                name = legend(query.legend, labels)
                ax.plot([t - start for t, _ in points], [v for _, v in points], label=name,
                        linewidth=1.2)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
    for ax in list(axes.flat)[len(answers):]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


@contextlib.contextmanager
def running(folder: Path, seconds: float = 25) -> Iterator[Live]:
    live = Live(folder)
    try:
        live.start()
        asyncio.run(live.traffic(seconds))
        yield live
    finally:
        live.stop()


def main() -> None:
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboards")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp), 60) as live:
        for board in BOARDS:
            draw(board, live.answers(board, 70), out / f"{board.uid}.png")
            print(f"wrote {out / board.uid}.png")
    print(json.dumps({"boards": len(BOARDS)}))


if __name__ == "__main__":
    main()
