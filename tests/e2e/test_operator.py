"""The operator end to end: a real `kopf run` (KopfRunner) against the kmock Kubernetes API,
a real redis-server, a real `csms serve --redis-url` pod, and the `ocpp` library's client."""

import asyncio
import base64
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets
from ocpp.routing import on
from ocpp.v16 import call_result as result16
from websockets.exceptions import InvalidStatus

from tests.conftest import KUBECONFIG
from tests.e2e.conftest import Server, basic, free_port, start_server, stop_server
from tests.e2e.stations import Station16, connected
from tests.kube_mock import KubeMock
from tests.polling import eventually, wait_until
from tests.redis_server import RedisServer

GROUP, VERSION, PLURAL = "csms.dev", "v1alpha1", "chargingstations"
PASSWORD, ROTATED = "first-password-16", "rotated-password-16"
REDIS_PASSWORD = "operator-redis-Pw-93kq"
# Never in the operator's output, even at --verbose (kopf prints resource bodies there).
SECRETS = [PASSWORD, ROTATED, REDIS_PASSWORD,
           *(base64.b64encode(p.encode()).decode() for p in (PASSWORD, ROTATED))]


class World:
    def __init__(self, tmp: Path) -> None:
        self.kube = KubeMock().start()
        self.kube.kubeconfig(Path(KUBECONFIG))
        (tmp / "redis").mkdir()
        self.store = RedisServer(tmp / "redis", ("csms", REDIS_PASSWORD)).start()
        self.redis = redis.Redis.from_url(self.store.url)
        (tmp / "pod").mkdir()
        self.pod: Server = start_server(tmp / "pod", "", "--redis-url", self.store.url)
        from kubernetes import client, config

        config.load_kube_config(config_file=KUBECONFIG)
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.liveness_port = free_port()
        self.metrics_port = free_port()

    def stop(self) -> None:
        self.api.close()
        stop_server(self.pod)
        self.redis.close()
        self.store.stop()
        self.kube.stop()

    def apply_secret(self, name: str, password: str, namespace: str = "default") -> None:
        from kubernetes import client

        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                               data={"password": base64.b64encode(password.encode()).decode()})
        try:
            self.core.read_namespaced_secret(name, namespace)
        except client.exceptions.ApiException as exc:
            assert exc.status == 404
            self.core.create_namespaced_secret(namespace, body)
        else:  # kmock 0.8 has no PUT: rotate with a patch
            self.core.patch_namespaced_secret(name, namespace, {"data": body.data})

    def create(self, name: str, spec: dict[str, Any], namespace: str = "default") -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ChargingStation",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec})

    def patch_spec(self, name: str, spec: dict[str, Any], namespace: str = "default") -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                   {"spec": spec})

    def delete(self, name: str, namespace: str = "default") -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        result: dict[str, Any] = obj.get("status") or {}
        return result

    def condition(self, name: str, kind: str) -> str | None:
        for condition in self.status(name).get("conditions", []):
            if condition["type"] == kind:
                return str(condition["status"])
        return None

    def events(self, reason: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event("default").items
                if e.reason == reason]

    def registered(self, sid: str) -> bool:
        return bool(self.redis.hexists("csms:registry", sid))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from kopf.testing import KopfRunner

    w = World(tmp_path_factory.mktemp("operator"))
    runner = KopfRunner(["run", "--all-namespaces", "--standalone", "-m", "csms_operator",
                         "--liveness", f"http://127.0.0.1:{w.liveness_port}/healthz"],
                        env={"CSMS_REDIS_URL": w.store.url,
                             "CSMS_OPERATOR_METRICS_PORT": str(w.metrics_port)})
    try:
        with runner:
            # kmock's watches do not resume from a resourceVersion: objects made before the
            # operator's watch is open are seen only at its next re-list. Wait for a probe.
            probes = []
            for attempt in range(30):
                probes.append(f"watch-probe-{attempt}")
                w.create(probes[-1], {})
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: w.registered(probes[-1]), 1, "the operator's watch")
                    break
            for probe in probes:
                w.delete(probe)
            wait_until(lambda: not any(w.registered(p) for p in probes), 30, "probes gone")
            yield w
    finally:
        w.stop()
    assert runner.exception is None, runner.output[-3000:]
    assert runner.exit_code == 0, runner.output[-3000:]
    assert "failed with an exception" not in runner.output  # no handler ever failed
    assert "Traceback" not in runner.output
    assert "registry in Redis at redis://csms:[redacted]@" in runner.output
    assert "Creation is in progress" in runner.output  # debug lines were written, and read
    assert [s for s in SECRETS if s in runner.output] == []


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@contextlib.contextmanager
def verbose() -> Iterator[None]:
    """What `kopf run --verbose` does, for one test: the operator runs in this process.
    (Not for the whole module: debug logs of a thousand resources slow it tenfold.)"""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(level)


async def test_a_resource_admits_its_station_and_follows_it_through_its_life(
    world: World,
) -> None:
    with verbose():
        await lifecycle(world)


async def lifecycle(world: World) -> None:
    w = world
    await in_thread(w.apply_secret, "cp-op-auth", PASSWORD)
    await in_thread(w.create, "cp-op", {
        "protocols": ["ocpp1.6"], "securityProfile": 1,
        "passwordSecretRef": {"name": "cp-op-auth"},
        "configuration": {"MeterValueSampleInterval": 30}})
    await eventually(lambda: w.registered("cp-op"), 20)
    stored = w.redis.hget("csms:registry", "cp-op")
    assert stored and PASSWORD.encode() not in stored  # a salted hash, never the password

    # A wrong password is refused with 401, and the operator turns it into an Event.
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{w.pod.ws}/cp-op", subprotocols=["ocpp1.6"],
                                      additional_headers=basic("cp-op", "wrong-password-16")):
            pass
    assert refused.value.response.status_code == 401
    await eventually(lambda: in_thread(w.events, "CredentialsRejected"), 20)

    async with connected(w.pod.ws, "cp-op", "1.6",
                         additional_headers=basic("cp-op", PASSWORD)) as station:
        from ocpp.v16 import call as call16

        await station.call(call16.BootNotification(charge_point_vendor="Acme",
                                                   charge_point_model="Op-1",
                                                   firmware_version="3.1"))
        await eventually(lambda: station.configuration == {"MeterValueSampleInterval": "30"})

        async def shows_live_state() -> bool:
            status = await in_thread(w.status, "cp-op")
            return bool(status.get("connected")) and status.get("lastBoot") is not None \
                and status.get("configuration") == {"MeterValueSampleInterval": "Applied"}

        await eventually(shows_live_state, 20)
        status = await in_thread(w.status, "cp-op")
        assert status["protocol"] == "1.6" and status["pod"] and status["lastSeen"]
        assert status["lastBoot"]["vendor"] == "Acme"
        assert status["lastBoot"]["firmwareVersion"] == "3.1"
        assert await in_thread(w.condition, "cp-op", "Connected") == "True"

        # A new configuration value reaches the connected station at once.
        await in_thread(w.patch_spec, "cp-op", {"configuration": {
            "MeterValueSampleInterval": 10, "ConnectionTimeOut": 60}})
        await eventually(lambda: station.configuration == {
            "MeterValueSampleInterval": "10", "ConnectionTimeOut": "60"}, 20)

        # A rotated Secret: re-hashed without touching the resource.
        before = w.redis.hget("csms:registry", "cp-op")
        await in_thread(w.apply_secret, "cp-op-auth", ROTATED)
        await eventually(lambda: w.redis.hget("csms:registry", "cp-op") != before, 20)
    with pytest.raises(InvalidStatus) as old:
        async with websockets.connect(f"{w.pod.ws}/cp-op", subprotocols=["ocpp1.6"],
                                      additional_headers=basic("cp-op", PASSWORD)):
            pass
    assert old.value.response.status_code == 401

    async with connected(w.pod.ws, "cp-op", "1.6",
                         additional_headers=basic("cp-op", ROTATED)) as station:
        await eventually(lambda: w.redis.get("csms:owner:cp-op") is not None)
        # Deleting the resource disconnects the station, which is then unknown (404).
        await in_thread(w.delete, "cp-op")
        await asyncio.wait_for(station._connection.wait_closed(), 20)
        assert station._connection.close_code == 1008
    with pytest.raises(InvalidStatus) as gone:
        async with websockets.connect(f"{w.pod.ws}/cp-op", subprotocols=["ocpp1.6"],
                                      additional_headers=basic("cp-op", ROTATED)):
            pass
    assert gone.value.response.status_code == 404
    assert not w.registered("cp-op")


class Picky(Station16):
    """Refuses one configuration key, as a station with a read-only key does."""

    @on("ChangeConfiguration")
    def change_configuration(self, key: str, value: str) -> Any:
        if key == "ReadOnlyKey":
            return result16.ChangeConfiguration(status="Rejected")
        return super().change_configuration(key, value)


async def test_rejected_configuration_and_disabling_are_events_and_status(world: World) -> None:
    w = world
    await in_thread(w.create, "picky", {"protocols": ["ocpp1.6"], "configuration": {
        "ReadOnlyKey": 1, "MeterValueSampleInterval": 15}})
    await eventually(lambda: w.registered("picky"), 20)
    async with websockets.connect(f"{w.pod.ws}/picky", subprotocols=["ocpp1.6"]) as ws:
        station = Picky("picky", ws)
        task = asyncio.create_task(station.start())
        from ocpp.v16 import call as call16

        await station.call(call16.BootNotification(charge_point_vendor="A",
                                                   charge_point_model="B"))

        async def rejected() -> bool:
            status = await in_thread(w.status, "picky")
            return status.get("configuration") == {"ReadOnlyKey": "Rejected",
                                                   "MeterValueSampleInterval": "Applied"}

        await eventually(rejected, 20)
        assert await in_thread(w.condition, "picky", "ConfigurationApplied") == "False"
        await eventually(lambda: in_thread(w.events, "ConfigurationRejected"), 20)

        await in_thread(w.patch_spec, "picky", {"enabled": False})
        await asyncio.wait_for(ws.wait_closed(), 20)
        assert ws.close_code == 1008
        task.cancel()
    await eventually(lambda: in_thread(w.events, "Disabled"), 20)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{w.pod.ws}/picky", subprotocols=["ocpp1.6"]):
            pass
    assert refused.value.response.status_code == 404
    assert await in_thread(w.condition, "picky", "Registered") == "False"


def test_the_liveness_endpoint_checks_redis(world: World) -> None:
    import httpx

    response = httpx.get(f"http://127.0.0.1:{world.liveness_port}/healthz", timeout=5)
    assert response.status_code == 200 and response.json()["redis"] is True


def test_a_thousand_resources_reconcile_without_errors(world: World) -> None:
    names = [f"bulk-{n:04d}" for n in range(1000)]
    world.core.create_namespace({"metadata": {"name": "bulk"}})
    started = time.monotonic()
    for name in names:
        world.create(name, {"authorization": {"acceptAll": True}}, namespace="bulk")
    created = time.monotonic() - started
    wait_until(lambda: world.redis.hlen("csms:registry") >= 1000, 120,
               "1,000 registry entries")
    registered = time.monotonic() - started

    def all_have_status() -> bool:
        items = world.custom.list_namespaced_custom_object(GROUP, VERSION, "bulk",
                                                           PLURAL)["items"]
        return len(items) == 1000 and all(
            item.get("status", {}).get("stationId") == item["metadata"]["name"]
            for item in items)

    wait_until(all_have_status, 60, "1,000 statuses")
    # KopfRunner swaps sys.stdout while the operator runs: report on the real one.
    print(f"\n1,000 ChargingStations: created in {created:.1f} s, all in the registry "
          f"after {registered:.1f} s, all with a status after {time.monotonic() - started:.1f}"
          " s", file=sys.__stderr__)


def test_the_operator_metrics_count_reconciles_and_status_writes(world: World) -> None:
    import httpx

    # After the tests above, a thousand resources among them.
    text = httpx.get(f"http://127.0.0.1:{world.metrics_port}/metrics", timeout=5).text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['csms_operator_reconciles_total{outcome="ok"}'] >= 1000
    assert samples["csms_operator_reconcile_duration_seconds_count"] >= 1000
    # The loop's writes of live state (each reconcile writes its status through kopf).
    assert samples["csms_operator_status_writes_total"] > 0
    assert samples["csms_operator_stations"] >= 1000
    assert samples["csms_operator_status_pass_seconds"] > 0
    assert samples['csms_operator_reconciles_total{outcome="error"}'] == 0
