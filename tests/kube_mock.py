"""A Kubernetes API on loopback for the operator's tests: kmock's emulator, with what kmock 0.8
lacks and kopf needs (see ../shared/TOOLING.md): a fresh `metadata.resourceVersion` on every
write, `uid`, `creationTimestamp`, `generateName`, and 422 when a JSON-patch `test` fails;
and two O(n²) paths made linear (request history, object lookup), so a thousand resources
take seconds, not minutes.

It runs in a thread with its own event loop, so synchronous tests and `kopf.testing.KopfRunner`
(another thread) can both use it. `kubeconfig()` writes a config that points at it.
"""

import asyncio
import copy
import datetime
import itertools
import secrets
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import attrs
import kmock
from kmock._internal import enums

CRD_RESOURCE = "csms.dev/v1alpha1/chargingstations"


@attrs.frozen
class PatchConflict(kmock.KubernetesError):
    status: int = 422
    reason: str = "Invalid"
    message: str = "the JSON patch's test operation failed: the object changed"


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: Any) -> Any:
        # kmock matches each request against its whole request history: O(n²) over a test
        # that makes thousands. Nothing here asserts on old requests; keep only the newest.
        del self._requests[:-1]
        if request.resource is not None and request.action == enums.action.CREATE:
            meta = request.data.setdefault("metadata", {})
            if "name" not in meta and "generateName" in meta:
                meta["name"] = meta["generateName"] + secrets.token_hex(3)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta.setdefault("generation", 1)
            meta["resourceVersion"] = str(next(self._versions))
        elif request.resource is not None and request.action == enums.action.UPDATE:
            version = str(next(self._versions))
            if isinstance(request.data, list):  # JSON patch
                current = self._current(request)
                for op in request.data:
                    if op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion" \
                            and current is not None and op.get("value") != current:
                        return await self._render_error(PatchConflict())
                request.data.append({"op": "replace", "path": "/metadata/resourceVersion",
                                     "value": version})
            elif isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                meta["resourceVersion"] = version
                if "spec" in request.data and request.subresource is None:
                    previous = self._object(request)
                    generation = (previous or {}).get("metadata", {}).get("generation", 1)
                    meta["generation"] = generation + 1
        return await super()._handle(request)

    # kmock 0.8 finds an object by scanning all of them, on every request: O(n²) for a
    # thousand resources. Objects are keyed by (resource, namespace, name): look them up.
    def _get_resources(self) -> Any:
        return kmock.KubernetesScaffold._get_resources(self)

    async def _found(self, request: Any, namespace: str | None, name: str | None) -> Any:
        key = (request.resource, namespace, name)
        async with self._lock:
            return self.objects[key] if key in self.objects else None

    async def _serve_fetch(self, request: Any) -> Any:
        obj = await self._found(request, request.namespace, request.name)
        if obj is None or obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: Any) -> Any:
        meta = request.data.get("metadata", {})
        obj = await self._found(request, request.namespace or meta.get("namespace"),
                                request.name or meta.get("name"))
        return obj.raw

    async def _serve_update(self, request: Any) -> Any:
        return (await self._found(request, request.namespace, request.name)).last.raw

    async def _serve_delete(self, request: Any) -> Any:
        return (await self._found(request, request.namespace, request.name)).last.raw

    # What real kubectl needs of kmock 0.8 (../shared/proofs/helm-kmock.md): lists that name
    # their kind and apiVersion, and subresources without the parent's short names (or
    # kubectl warns that "chst" could also mean chargingstations/status).
    async def _serve_list(self, request: Any) -> Any:
        listed = dict(await super()._serve_list(request))
        resource = request.resource
        info = self._resources[next(r for r in self._get_resources() if r == resource)]
        kind = info.kind if info.kind is not None else resource.plural.capitalize()
        listed["kind"] = f"{kind}List"
        listed["apiVersion"] = f"{resource.group}/{resource.version}".lstrip("/")
        return listed

    async def _serve_version(self, request: Any) -> Any:
        served = dict(await super()._serve_version(request))
        served["resources"] = [{**r, "shortNames": []} if "/" in r["name"] else r
                               for r in served["resources"]]
        return served

    def _object(self, request: Any) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(dict(self.objects[key].raw))
        return None

    def _current(self, request: Any) -> str | None:
        obj = self._object(request)
        return obj.get("metadata", {}).get("resourceVersion") if obj else None


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeMock:
    """The emulator serving HTTP on 127.0.0.1 from a background thread."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: Emulator | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="kube-mock", daemon=True)

    def start(self) -> "KubeMock":
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the Kubernetes API mock did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            with warnings.catch_warnings():  # kmock 0.8 uses a deprecated importlib call
                warnings.simplefilter("ignore", DeprecationWarning)
                emulator.resources.load_bundled()
            emulator.resources[CRD_RESOURCE] = kmock.ResourceInfo(
                namespaced=True, kind="ChargingStation", singular="chargingstation",
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                shortnames={"chst"}, subresources={"status"})
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: mock
  cluster: {{server: "{self.url}"}}
users:
- name: mock
  user: {{token: test-token}}
contexts:
- name: mock
  context: {{cluster: mock, user: mock, namespace: default}}
current-context: mock
""")
        return path
