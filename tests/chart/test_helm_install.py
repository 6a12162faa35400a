"""`helm install` end to end, as a user would: the real helm and kubectl against the API
emulator (tests/kube_mock.py), with the rest of a cluster around it (tests/chart/cluster.py:
pods as local processes, a kube-proxy, a real nginx as the ingress controller) and a real
Redis as the chart's bundled Redis pod.

helm install → kubectl apply of the example stations and a fleet → the operator (the
rendered Deployment's command) registers them → the stations connect through the ingress
with their passwords and boot → `kubectl get` shows them connected → helm upgrade with a
changed setting rolls the pods one at a time: the stations are drained (1012), reconnect,
and nothing is lost → helm test → helm uninstall.
"""

import argparse
import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.simulate.fleet import fleet
from csms.simulate.options import add_options
from csms.simulate.stats import Stats
from tests import k8s_tools
from tests.chart.cluster import Cluster
from tests.chart.test_chart import CHART
from tests.e2e.stations import connected
from tests.kube_mock import KubeMock
from tests.polling import eventually

ROOT = CHART.parent.parent
TOKEN = "an-evaluation-token-0123456789"
FLEET = 20
FLEET_PASSWORD = "fleet-password-0123456789"
# The chart's evaluation values, with an ingress, short pauses and frequent statuses.
VALUES = {
    "central": {"replicaCount": 2, "preStopSeconds": 1, "drainSpread": 2,
                "gracefulTimeout": 8, "logJson": False},
    "redis": {"bundled": {"enabled": True}},
    "api": {"token": TOKEN},
    "operator": {"statusEvery": 1},
    "ingress": {"enabled": True, "host": "ocpp.example.test"},
}


def fleet_manifests() -> str:
    """The fleet's ChargingStations, with one password Secret for all of them."""
    docs: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fleet-auth"},
        "stringData": {"password": FLEET_PASSWORD}}]
    docs += [{"apiVersion": "csms.dev/v1alpha1", "kind": "ChargingStation",
              "metadata": {"name": f"fleet-{n:04d}"},
              "spec": {"protocols": ["ocpp2.0.1"], "securityProfile": 1,
                       "passwordSecretRef": {"name": "fleet-auth"},
                       "authorization": {"acceptAll": True}}} for n in range(1, FLEET + 1)]
    return yaml.safe_dump_all(docs)


@dataclass
class World:
    kube: KubeMock
    cluster: Cluster
    env: dict[str, str]
    tools: dict[str, Path]
    folder: Path

    async def run(self, tool: str, *args: str, stdin: str | None = None,
                  ok: bool = True) -> subprocess.CompletedProcess[str]:
        """helm or kubectl, in a thread: the stations in this event loop keep answering."""
        done = await asyncio.to_thread(
            subprocess.run, [str(self.tools[tool]), *args], input=stdin, capture_output=True,
            text=True, env=self.env, timeout=180, cwd=ROOT)
        if ok:
            assert done.returncode == 0, f"{tool} {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    async def until(self, check: Any, timeout: float) -> None:
        """`eventually`, failing at once if the cluster's controllers failed."""
        def checked() -> Any:
            assert self.cluster.failure is None, self.cluster.failure
            return check()

        await eventually(checked, timeout)

    @property
    def ingress(self) -> str:
        nginx, _ = self.cluster.ingresses["rel-csms"]
        return f"ws://127.0.0.1:{nginx.port}/ocpp"

    def api(self, path: str) -> Any:
        """The REST API through its internal Service (kube-proxy), with the chart's token."""
        port = self.cluster.proxies[("rel-csms-internal", 9001)].port
        answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5,
                           headers={"Authorization": f"Bearer {TOKEN}"})
        answer.raise_for_status()
        return answer.json()

    def views(self) -> list[Any]:
        """Every station as the cluster sees it (any pod answers, through Redis)."""
        ids = ["cp-0001", "cs-0002", "DEPOT-BAY-7"] + [f"fleet-{n:04d}"
                                                      for n in range(1, FLEET + 1)]
        return [self.api(f"/api/v1/stations/{sid}") for sid in ids]

    def central_pods(self) -> set[str]:
        return {r.pod.name for r in self.cluster.pods("rel-csms-central") if r.ready}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tools = k8s_tools.ensure()
    kube = KubeMock(crds=()).start()  # the CRD comes from the chart's crds/
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(tmp_path / "kube"),
           "HELM_CACHE_HOME": str(tmp_path / "helm/cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm/config"),
           "HELM_DATA_HOME": str(tmp_path / "helm/data")}
    cluster = Cluster(kube, tmp_path / "node", config).start()
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(VALUES))
    try:
        yield World(kube, cluster, env, tools, tmp_path)
    finally:
        cluster.stop()
        kube.stop()
    assert cluster.failure is None, cluster.failure


def simulated_fleet(world: World, stats: Stats) -> "asyncio.Task[None]":
    """`csms simulate`'s stations (its reconnecting client), through the ingress."""
    parser = argparse.ArgumentParser()
    add_options(parser)
    options = parser.parse_args([
        f"--url={world.ingress}", "--prefix=fleet-", f"--stations={FLEET}", "--version=2.0.1",
        f"--password={FLEET_PASSWORD}", "--heartbeat=1", "--session-every=3",
        "--meter-every=1", "--connect-rate=100", "--no-display"])
    return asyncio.create_task(fleet(options, stats))


async def test_helm_install_upgrade_test_and_uninstall(world: World) -> None:
    values = str(world.folder / "values.yaml")
    await world.run("helm", "install", "rel", str(CHART), "-f", values, "--wait",
                    "--timeout=120s")
    first_pods = world.central_pods()
    assert len(first_pods) == 2

    await world.run("kubectl", "apply", "-f", "examples/stations/")
    await world.run("kubectl", "apply", "-f", "-", stdin=fleet_manifests())

    async def registered() -> bool:
        listed = json.loads((await world.run("kubectl", "get", "chst", "-o", "json")).stdout)
        return len(listed["items"]) == FLEET + 4 and all(
            item.get("status", {}).get("stationId") for item in listed["items"])

    await world.until(registered, 60)

    stats = Stats()
    runner = simulated_fleet(world, stats)
    basic = base64.b64encode(b"cs-0002:demo-password-0002").decode()
    try:
        async with (
            connected(world.ingress, "cp-0001", "1.6") as cp1,
            connected(world.ingress, "cs-0002", "2.0.1",
                      additional_headers={"Authorization": f"Basic {basic}"}) as cs2,
            connected(world.ingress, "DEPOT-BAY-7", "2.0.1") as depot,
        ):
            boot16 = await cp1.call(call16.BootNotification(charge_point_model="M",
                                                            charge_point_vendor="V"))
            assert boot16.status == "Accepted"
            for station in (cs2, depot):
                boot = await station.call(call201.BootNotification(
                    charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
                assert boot.status == "Accepted"
            # A disabled station and a wrong password are refused at the handshake.
            for sid, headers in (("cp-retired", {}), ("cs-0002", {
                    "Authorization": "Basic " + base64.b64encode(b"cs-0002:wrong").decode()})):
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with connected(world.ingress, sid, "2.0.1",
                                         additional_headers=headers):
                        pass
                assert refused.value.response.status_code in (401, 403, 404)

            await world.until(lambda: stats.connected == FLEET, 60)
            total = FLEET + 3
            await world.until(lambda: all(v["connected"] for v in world.views()), 30)

            async def shown_connected() -> bool:
                table = (await world.run("kubectl", "get", "chst")).stdout.splitlines()
                rows = [line.split() for line in table[1:]]
                return sum(row[2] == "true" for row in rows if len(row) > 2) == total

            await world.until(shown_connected, 30)

            # A changed setting: new checksums, a rollout one pod at a time.
            calls_before = stats.calls
            await world.run("helm", "upgrade", "rel", str(CHART), "-f", values,
                            "--set-string", "central.env.CSMS_HEARTBEAT_INTERVAL=120",
                            "--wait", "--timeout=180s")
            for station in (cp1, cs2, depot):
                await asyncio.wait_for(station._connection.wait_closed(), 60)
                assert station._connection.close_code == 1012
        second_pods = world.central_pods()
        assert len(second_pods) == 2 and not second_pods & first_pods

        # The old pods drained one after the other, each after its replacement was up
        # (helm's --wait ends when the new pods are available, the last drain may go on).
        def drained() -> list[tuple[float, float]]:
            return sorted(r.terminated for r in world.cluster.finished
                          if r.pod.name in first_pods and r.terminated)

        await world.until(lambda: len(drained()) == 2, 60)
        (_, first_end), (second_start, _) = drained()
        assert first_end <= second_start, drained()
        for name in first_pods:
            log = (world.folder / "node" / name / "log").read_text()
            assert "disconnected (draining)" in log

        # Every station is back, on the new pods, and the fleet kept working.
        await world.until(lambda: stats.connected == FLEET, 60)
        fleet_views = [v for v in world.views() if v["id"].startswith("fleet-")]
        assert len(fleet_views) == FLEET and all(
            v["connected"] and any(v["pod"].startswith(f"{p}-") for p in second_pods)
            for v in fleet_views), fleet_views
        assert stats.calls - calls_before > FLEET and stats.refused == 0, stats.summary()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    tested = await world.run("helm", "test", "rel", "--timeout=120s")
    assert "Phase:          Succeeded" in tested.stdout or "Succeeded" in tested.stdout

    await world.run("helm", "uninstall", "rel", "--wait", "--timeout=120s")
    left = await world.run("kubectl", "get", "deployments,services,configmaps,secrets", "-o",
                           "name")
    assert left.stdout.split() == ["secret/cs-0002-auth", "secret/fleet-auth"], left.stdout
    await world.until(lambda: not world.cluster.replicas, 60)
    # The CRD and the stations applied by kubectl stay (helm keeps crds/ by design).
    kept = await world.run("kubectl", "get", "chst", "-o", "name")
    assert len(kept.stdout.split()) == FLEET + 4
