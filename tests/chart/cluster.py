"""The rest of a cluster around the Kubernetes API emulator (tests/kube_mock.py), enough for
`helm install` to come alive on one machine:

- a Deployment controller: pods for each Deployment, rolled on a changed template within
  the strategy's maxSurge and maxUnavailable (or Recreate), scaled, removed with their
  Deployment, and the Deployment's status written back (what `helm --wait` reads);
- a kubelet: each pod a local process (tests/chart/kubelet.py), bare Pods too (`helm test`),
  whose phase is written back when they exit;
- a kube-proxy: each Service port a loopback port that forwards to its ready pods;
- an ingress controller: a real nginx per Ingress, its location and proxy settings read from
  the Ingress's rule and ingress-nginx annotations, reloaded with the ready pods as they
  change (ingress-nginx sends to pods, not to the Service).

It reconciles in a thread of its own every few tenths of a second, as controllers do.
"""

import asyncio
import contextlib
import hashlib
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.chart.kubelet import Objects, Pod
from tests.kube_mock import KubeMock
from tests.nginx_server import Nginx, Route

Manifest = dict[str, Any]
DEPLOYMENTS = ("apps", "v1", "deployments")
PODS = ("", "v1", "pods")
SERVICES = ("", "v1", "services")
INGRESSES = ("networking.k8s.io", "v1", "ingresses")
INTERVAL = 0.2  # seconds between two reconciliations


class Replica:
    """A pod a Deployment owns, with what the controller tracks about it."""

    def __init__(self, pod: Pod, owner: str, revision: str) -> None:
        self.pod = pod
        self.owner = owner
        self.revision = revision
        self.ready_since: float | None = None
        self.terminating: threading.Thread | None = None
        self.terminated: tuple[float, float] | None = None  # when it was told, when it ended
        self.restarts = 0

    @property
    def ready(self) -> bool:
        return self.ready_since is not None and self.terminating is None

    def probe(self) -> None:
        if self.terminating is None and not self.pod.running:  # restartPolicy: Always
            self.restarts += 1
            self.pod.start()
        if self.terminating is None and self.pod.probe():
            self.ready_since = self.ready_since or time.monotonic()
        else:
            self.ready_since = None

    def available(self, min_ready_seconds: float) -> bool:
        """Ready for minReadySeconds: only then may the controller take an old pod away."""
        return self.ready_since is not None and self.terminating is None and \
            time.monotonic() - self.ready_since >= min_ready_seconds

    def terminate(self) -> None:
        """Out of the endpoints now; preStop, SIGTERM and the grace period in a thread."""
        told = time.monotonic()

        def stop() -> None:
            self.pod.stop()
            self.terminated = (told, time.monotonic())

        self.terminating = threading.Thread(target=stop, name=f"stop-{self.pod.name}")
        self.terminating.start()

    @property
    def gone(self) -> bool:
        return self.terminating is not None and not self.terminating.is_alive()


class Proxy:
    """One Service port: connections to it go to a ready pod, round robin."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoints: list[int] = []
        self._next = 0
        self._connections: set[asyncio.Task[Any]] = set()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, "127.0.0.1", 0), loop).result(10)
        self.port: int = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._connect(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _connect(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        if not self.endpoints:
            return  # no ready pod: the connection closes, as with no endpoints
        self._next += 1
        port = self.endpoints[self._next % len(self.endpoints)]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()


class Cluster:
    def __init__(self, kube: KubeMock, folder: Path, kubeconfig: Path,
                 namespace: str = "default") -> None:
        self.kube = kube
        self.folder = folder
        self.namespace = namespace
        self.api = httpx.Client(base_url=kube.url, timeout=10)
        self.node_env = {"KUBECONFIG": str(kubeconfig)}  # the service account, in effect
        self.replicas: list[Replica] = []
        self.finished: list[Replica] = []  # pods that ran and were terminated
        self.bare: dict[str, Pod] = {}
        self.proxies: dict[tuple[str, int], Proxy] = {}
        self.ingresses: dict[str, tuple[Nginx, list[int]]] = {}
        self._loop = asyncio.new_event_loop()
        self._proxy_thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                              name="kube-proxy")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="controllers")
        self.failure: BaseException | None = None

    def start(self) -> "Cluster":
        self._proxy_thread.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(60)
        for replica in self.replicas:
            if replica.terminating is None:
                replica.terminate()
        for replica in self.replicas:
            assert replica.terminating is not None
            replica.terminating.join(120)
        for pod in self.bare.values():
            pod.stop()
        for nginx, _ in self.ingresses.values():
            nginx.stop()
        for proxy in self.proxies.values():
            asyncio.run_coroutine_threadsafe(proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._proxy_thread.join(10)
        self._loop.close()
        self.api.close()

    def _run(self) -> None:
        while not self._stopped.wait(INTERVAL):
            try:
                self.reconcile()
            except Exception as exc:  # the test sees it through `failure`
                self.failure = exc
                return

    def pods(self, owner: str) -> list[Replica]:
        """The live pods of a Deployment (not terminating)."""
        return [r for r in self.replicas if r.owner == owner and r.terminating is None]

    # -- one pass of every controller ---------------------------------------------------

    def reconcile(self) -> None:
        objects = Objects([*self.kube.objects(("", "v1", "configmaps")),
                           *self.kube.objects(("", "v1", "secrets"))])
        services = [s for s in self.kube.objects(SERVICES)
                    if s["metadata"]["namespace"] == self.namespace]
        for service in services:
            for port in service["spec"].get("ports", []):
                key = (service["metadata"]["name"], port["port"])
                if key not in self.proxies:
                    self.proxies[key] = Proxy(self._loop)
        for replica in self.replicas:
            replica.probe()
        deployments = {d["metadata"]["name"]: d for d in self.kube.objects(DEPLOYMENTS)
                       if d["metadata"]["namespace"] == self.namespace}
        for deployment in deployments.values():
            self._deployment(deployment, objects)
        for replica in self.replicas:
            if replica.owner not in deployments and replica.terminating is None:
                replica.terminate()
        self.finished += [r for r in self.replicas if r.gone]
        self.replicas = [r for r in self.replicas if not r.gone]
        self._bare_pods(objects)
        for service in services:
            for port in service["spec"].get("ports", []):
                proxy = self.proxies[(service["metadata"]["name"], port["port"])]
                proxy.endpoints = self._endpoints(service, port.get("targetPort", port["port"]))
        self._ingresses(services)

    def _addresses(self) -> dict[str, str]:
        """Service addresses as pods write them, to the kube-proxy's ports."""
        addresses = {}
        for (name, port), proxy in self.proxies.items():
            for host in (name, f"{name}.{self.namespace}", f"{name}.{self.namespace}.svc",
                         f"{name}.{self.namespace}.svc.cluster.local"):
                addresses[f"{host}:{port}"] = f"127.0.0.1:{proxy.port}"
        return addresses

    def _endpoints(self, service: Manifest, target: str | int) -> list[int]:
        selector = service["spec"].get("selector", {})
        return [r.pod.port(target) for r in self.replicas
                if r.ready and selector.items() <= r.pod.labels.items()]

    def _deployment(self, deployment: Manifest, objects: Objects) -> None:
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]
        template = spec["template"]
        revision = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        wanted = spec.get("replicas", 1)
        live = self.pods(name)
        current = [r for r in live if r.revision == revision]
        old = [r for r in live if r.revision != revision]
        strategy = spec.get("strategy", {})
        if strategy.get("type") == "Recreate":
            for replica in old:
                replica.terminate()
            all_gone = not [r for r in self.replicas if r.owner == name and r.revision != revision]
            if all_gone and len(current) < wanted:
                self._start(name, revision, template, objects)
        else:
            rolling = strategy.get("rollingUpdate", {})
            surge = _count(rolling.get("maxSurge", "25%"), wanted, math.ceil)
            unavailable = _count(rolling.get("maxUnavailable", "25%"), wanted, math.floor)
            if len(current) < wanted and len(live) < wanted + surge:
                self._start(name, revision, template, objects)
            min_ready = spec.get("minReadySeconds", 0)
            available = [r for r in live if r.available(min_ready)]
            for replica in old:  # pods that serve nothing go first, and cost no availability
                if not replica.ready:
                    replica.terminate()
                elif len(available) - 1 >= wanted - unavailable:
                    replica.terminate()
                    available.remove(replica)
            if not old:
                for replica in current[wanted:]:
                    replica.terminate()
        self._status(deployment, revision)

    def _start(self, owner: str, revision: str, template: Manifest, objects: Objects) -> None:
        name = f"{owner}-{revision[:6]}-{len(self.replicas):05x}"
        pod = Pod(name, template["spec"], objects, self.folder, self._addresses(),
                  self.node_env, labels=template["metadata"].get("labels", {}))
        self.replicas.append(Replica(pod.start(), owner, revision))

    def _status(self, deployment: Manifest, revision: str) -> None:
        live = self.pods(deployment["metadata"]["name"])
        ready = sum(r.ready for r in live)
        available = sum(r.available(deployment["spec"].get("minReadySeconds", 0)) for r in live)
        updated = sum(r.revision == revision for r in live)
        wanted = deployment["spec"].get("replicas", 1)
        done = updated == wanted == available == len(live)
        status = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": len(live), "updatedReplicas": updated, "readyReplicas": ready,
            "availableReplicas": available, "unavailableReplicas": max(wanted - available, 0),
            "conditions": [
                {"type": "Available", "status": "True" if available >= wanted else "False",
                 "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True",
                 "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated"}]}
        if {k: v for k, v in deployment.get("status", {}).items()} != status:
            meta = deployment["metadata"]
            self.api.patch(f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/"
                           f"{meta['name']}/status", content=json.dumps({"status": status}),
                           headers={"Content-Type": "application/merge-patch+json"}
                           ).raise_for_status()

    def _bare_pods(self, objects: Objects) -> None:
        """Pods made without a controller (helm test's): run once, the phase written back."""
        manifests = {p["metadata"]["name"]: p for p in self.kube.objects(PODS)
                     if p["metadata"]["namespace"] == self.namespace}
        for name, manifest in manifests.items():
            if name not in self.bare:
                pod = Pod(name, manifest["spec"], objects, self.folder, self._addresses(),
                          self.node_env)
                self.bare[name] = pod.start()
                self._phase(manifest, "Running")
            elif not self.bare[name].running and manifest.get("status", {}).get(
                    "phase") == "Running":
                code = self.bare[name].proc.returncode  # type: ignore[union-attr]
                self._phase(manifest, "Succeeded" if code == 0 else "Failed", code)
        for name in [n for n in self.bare if n not in manifests]:
            self.bare.pop(name).stop()

    def _phase(self, pod: Manifest, phase: str, code: int | None = None) -> None:
        state: Manifest = {"running": {}} if code is None else {
            "terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}
        status = {"phase": phase, "containerStatuses": [
            {"name": c["name"], "state": state, "ready": False, "restartCount": 0,
             "image": c.get("image", ""), "imageID": ""} for c in pod["spec"]["containers"]]}
        meta = pod["metadata"]
        self.api.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                       content=json.dumps({"status": status}),
                       headers={"Content-Type": "application/merge-patch+json"}
                       ).raise_for_status()

    def _ingresses(self, services: list[Manifest]) -> None:
        by_name = {s["metadata"]["name"]: s for s in services}
        ingresses = {i["metadata"]["name"]: i for i in self.kube.objects(INGRESSES)
                     if i["metadata"]["namespace"] == self.namespace}
        for name, ingress in ingresses.items():
            (rule,) = ingress["spec"]["rules"]
            (path,) = rule["http"]["paths"]
            backend = path["backend"]["service"]
            service = by_name[backend["name"]]
            port = next(p for p in service["spec"]["ports"]
                        if p.get("name") == backend["port"].get("name")
                        or p["port"] == backend["port"].get("number"))
            ports = sorted(self._endpoints(service, port.get("targetPort", port["port"])))
            if name not in self.ingresses:
                folder = self.folder / f"ingress-{name}"
                folder.mkdir(parents=True, exist_ok=True)
                nginx = Nginx(folder, ports, route=_route(ingress, path["path"]))
                self.ingresses[name] = (nginx.start(), ports)
            elif self.ingresses[name][1] != ports:
                nginx = self.ingresses[name][0]
                nginx.reload(ports)
                self.ingresses[name] = (nginx, ports)
        for name in [n for n in self.ingresses if n not in ingresses]:
            self.ingresses.pop(name)[0].stop()


def _count(value: int | str, replicas: int, rounding: Any) -> int:
    """maxSurge (rounded up) or maxUnavailable (rounded down): a number or a percentage."""
    if isinstance(value, str) and value.endswith("%"):
        return int(rounding(replicas * int(value[:-1]) / 100))
    return int(value)


def _route(ingress: Manifest, path: str) -> Route:
    """What ingress-nginx makes of the rule's path and the Ingress's annotations."""
    notes = ingress["metadata"].get("annotations", {})
    prefix = "nginx.ingress.kubernetes.io/"
    default = Route()
    return Route(path=path,
                 hash_by=notes.get(prefix + "upstream-hash-by", default.hash_by),
                 read_timeout=int(notes.get(prefix + "proxy-read-timeout", 60)),
                 send_timeout=int(notes.get(prefix + "proxy-send-timeout", 60)),
                 next_upstream=notes.get(prefix + "proxy-next-upstream", "error timeout"))
