"""The chart's rendered pods run: its bundled Redis and two central pods started by the test
kubelet from `helm template` output, wired only by what the chart renders (settings, the
generated Redis password, the API token file, the pod name, the split ports)."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
from ocpp.v201 import call as call201

from tests import k8s_tools
from tests.chart.kubelet import Objects, Pod
from tests.chart.test_chart import CHART, render
from tests.e2e.stations import connected

TOKEN = "an-evaluation-token-0123456789"


async def test_the_rendered_central_pods_serve_share_redis_and_drain(tmp_path: Path) -> None:
    helm = k8s_tools.ensure()["helm"]
    objects = Objects(render(helm, "-f", str(CHART / "ci" / "bundled-redis-values.yaml"),
                             "--set", "operator.enabled=false", "--set", "tests.enabled=false",
                             "--set-string", "central.env.CSMS_ACCEPT_UNKNOWN=true"))
    def spec(deployment: str) -> dict[str, Any]:
        return objects.get("Deployment", deployment)["spec"]["template"]["spec"]  # type: ignore[no-any-return]

    redis = Pod("rel-csms-redis-0", spec("rel-csms-redis"), objects, tmp_path, {}).start()
    # The Service's address, straight to its one pod (tests/chart/cluster.py has a kube-proxy).
    services = {"rel-csms-redis:6379": f"127.0.0.1:{redis.ports[6379]}"}
    pods = [Pod(f"rel-csms-central-7d9f-{n}", spec("rel-csms-central"), objects, tmp_path,
                services) for n in ("a", "b")]
    try:
        redis.ready()
        for pod in pods:
            pod.start()
        for pod in pods:
            pod.ready()
        first, second = pods
        async with connected(f"ws://127.0.0.1:{first.ports[9000]}/ocpp", "CHART-1",
                             "2.0.1") as station:
            boot = await station.call(call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            async with httpx.AsyncClient() as client:
                api = f"http://127.0.0.1:{second.ports[9001]}/api/v1/stations/CHART-1"
                assert (await client.get(api)).status_code == 401  # the token is required
                view = (await client.get(api, headers={
                    "Authorization": f"Bearer {TOKEN}"})).json()
            # Seen from the other pod, through the chart's Redis: held by the first pod.
            assert view["connected"] is True and view["pod"].startswith(first.name + "-")
            first.proc.terminate()  # type: ignore[union-attr]  (what the kubelet sends)
            await asyncio.wait_for(station._connection.wait_closed(), 30)
            assert station._connection.close_code == 1012
    finally:
        for pod in [*pods, redis]:
            pod.stop()
    assert "CHART-1 disconnected (draining)" in first.log.read_text()
