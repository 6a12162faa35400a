"""A Kubernetes API on loopback for the tests: real kopf, kubectl and helm talk to it.

kmock's `KubernetesEmulator` brings the HTTP server, the discovery documents of k3s's
built-in resources and Kubernetes-style errors. What it lacks, for kopf (the operator's
tests) and for `helm install/upgrade/test/uninstall` and `kubectl apply/get` (the chart's),
is added here (../shared/proofs/helm-kmock.md lists each gap and the failure it causes):

- an object store keyed by resource, namespace and name, with `uid`, `resourceVersion`,
  `generation`, `creationTimestamp`, `generateName`, namespaces that must exist, status only
  through `/status`, and `deletionTimestamp` while finalizers remain;
- every write the clients make: POST, PUT (replace, with resourceVersion preconditions),
  merge patch, JSON patch (422 when its `test` fails), strategic merge patch and server-side
  apply (tests/kube_patch.py), DELETE, and `?dryRun=All` for each;
- the protobuf bodies client-go's typed clients send (tests/kube_protobuf.py);
- lists with kind, apiVersion, resourceVersion, label and field selectors, and Tables with a
  CRD's printer columns (what `kubectl get` prints);
- watches from a resourceVersion (replayed from a log of recent events, 410 when too old),
  with initial events and their bookmark (WatchList);
- CRDs that become Established and are served, in discovery and OpenAPI, once created;
- discovery fixes (the core group's version, preferred versions, a 1.35 server version) and
  an OpenAPI v3 index that tells clients the server validates fields (fieldValidation).

Not emulated: controllers and a kubelet (the chart tests bring their own, tests/chart/),
schema validation, admission, RBAC, garbage collection, conversion between versions.

It runs in a thread with its own event loop, so synchronous tests and `kopf.testing.KopfRunner`
(another thread) can both use it. `kubeconfig()` writes a config that points at it.
"""

import asyncio
import base64
import collections
import copy
import datetime
import hashlib
import json
import re
import secrets
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from tests import kube_patch, kube_protobuf

Manifest = dict[str, Any]
Gvr = tuple[str, str, str]  # group ("" for the core group), version, plural
Key = tuple[Gvr, str | None, str]  # resource, namespace (None: cluster-scoped), name

CRD_GVR: Gvr = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
CHARGING_STATIONS = Path(__file__).parent.parent / "charts/csms/crds/chargingstations.yaml"
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
EVENT_LOG = 10_000  # events kept for watches that start from a resourceVersion


def error(status: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message,
                                 details=details or {"causes": []})


def not_found(plural: str, name: str) -> kmock.KubernetesError:
    return error(404, "NotFound", f'{plural} "{name}" not found', name=name, kind=plural)


@dataclass(frozen=True)
class Target:
    """What an object path names: /api/v1/namespaces/ns/pods/name/status."""

    gvr: Gvr
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def api_version(self) -> str:
        group, version, _ = self.gvr
        return f"{group}/{version}" if group else version

    @classmethod
    def parse(cls, path: str) -> "Target | None":
        """None for paths that name no resource (discovery, /version, /openapi)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        # namespaces/NAME/status is a Namespace's subresource, not a resource called status.
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2:] not in (["status"],
                                                                            ["finalize"]):
            namespace, rest = rest[1], rest[2:]
        name = rest[1] if len(rest) > 1 else None
        subresource = "/".join(rest[2:]) or None
        return cls((group, version, rest[0]), namespace, name, subresource)


@dataclass
class Selector:
    """A label or field selector, as list and watch requests carry them."""

    equal: dict[str, str] = field(default_factory=dict)
    unequal: dict[str, str] = field(default_factory=dict)
    within: dict[str, set[str]] = field(default_factory=dict)
    outside: dict[str, set[str]] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> "Selector":
        selector = cls()
        for term in re.findall(r"(?:[^,(]|\([^)]*\))+", text or ""):
            term = term.strip()
            if match := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
                key, op, values = match.groups()
                target = selector.within if op == "in" else selector.outside
                target[key] = {v.strip() for v in values.split(",")}
            elif "!=" in term:
                key, value = term.split("!=", 1)
                selector.unequal[key.strip()] = value.strip()
            elif "=" in term:
                key, value = term.replace("==", "=").split("=", 1)
                selector.equal[key.strip()] = value.strip()
            elif term.startswith("!"):
                selector.absent.add(term[1:])
            elif term:
                selector.present.add(term)
        return selector

    def matches(self, values: dict[str, str]) -> bool:
        return (all(values.get(k) == v for k, v in self.equal.items())
                and all(values.get(k) != v for k, v in self.unequal.items())
                and all(values.get(k) in v for k, v in self.within.items())
                and all(values.get(k) not in v for k, v in self.outside.items())
                and all(k in values for k in self.present)
                and not any(k in values for k in self.absent))


@dataclass
class Query:
    """Which objects a list or watch asks for."""

    gvr: Gvr
    namespace: str | None
    labels: Selector
    fields: Selector

    def matches(self, obj: Manifest) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        fields = {"metadata.name": meta.get("name", ""),
                  "metadata.namespace": meta.get("namespace", "")}
        return self.labels.matches(meta.get("labels") or {}) and self.fields.matches(fields)


@dataclass
class Watch:
    query: Query
    events: asyncio.Queue[Manifest] = field(default_factory=asyncio.Queue)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_order(version: str) -> tuple[int, int, int]:
    """Kubernetes' preference: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    rank = {"alpha": 2, "beta": 1, None: 0}[stage]
    return (rank, -int(major), -int(minor or 0))


def _age(timestamp: Any) -> Any:
    """A date cell as the API server renders it for `kubectl get`: 42s, 5m3s, 3h, 2d4h."""
    if not isinstance(timestamp, str):
        return timestamp
    then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC)
    seconds = max(int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _lookup(obj: Any, path: str) -> Any:
    """A printer column's value: `.status.connected` (simple JSONPath field chains)."""
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    store: dict[Key, Manifest] = attrs.field(factory=dict, init=False)
    _applied: dict[Key, dict[str, Manifest]] = attrs.field(factory=dict, init=False)
    _watches: list[Watch] = attrs.field(factory=list, init=False)
    _log: collections.deque[tuple[int, Gvr, Manifest]] = attrs.field(
        factory=lambda: collections.deque(maxlen=EVENT_LOG), init=False)
    _revision: int = attrs.field(default=0, init=False)
    _columns: dict[Gvr, list[Manifest]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for name in NAMESPACES:
            self._commit((("", "v1", "namespaces"), None, name), {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "uid": str(uuid.uuid4()),
                             "creationTimestamp": _now()},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
                "ADDED")

    # -- the HTTP entry point -------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw.read()
        try:
            if raw.path == "/openapi/v3" or raw.path.startswith("/openapi/v3/"):
                return aiohttp.web.json_response(self._openapi(raw.path))
            target = Target.parse(raw.path)
            if target is None:  # discovery: kmock's, with the fixes below
                return await super().__call__(raw)
            return await self._serve(raw, target, body)
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)

    async def _handle(self, request: Any) -> Any:
        # kmock keeps every request for assertions; only discovery comes here, and nothing
        # asserts on it: keep the newest, or a long test's requests pile up.
        del self._requests[:-1]
        return await super()._handle(request)

    async def _serve(self, raw: aiohttp.web.BaseRequest, target: Target,
                     body: bytes) -> aiohttp.web.StreamResponse:
        info = self._info(target)
        if raw.method == "GET":
            if raw.query.get("watch") in ("true", "1"):
                return await self._watch(raw, target, info)
            found = self._list(target, info, raw.query) if target.name is None \
                else self._get(target, info)
            if "as=Table" in raw.headers.get("Accept", ""):
                found = self._table(target, found)
            return aiohttp.web.json_response(found)
        data = self._body(raw, body, info)
        dry_run = raw.query.get("dryRun") == "All" or "All" in (
            data.get("dryRun") or [] if isinstance(data, dict) else [])
        if raw.method == "POST" and target.name is None:
            return aiohttp.web.json_response(self._create(target, info, data, dry_run),
                                             status=201)
        if target.name is None:
            raise error(405, "MethodNotAllowed", f"{raw.method} needs an object's name")
        if raw.method == "PUT":
            result = self._replace(target, info, data, dry_run)
        elif raw.method == "PATCH":
            result = self._patch(raw, target, info, data, dry_run)
        elif raw.method == "DELETE":
            result = self._delete(target, info, dry_run)
        else:
            raise error(405, "MethodNotAllowed", f"{raw.method} is not supported")
        return aiohttp.web.json_response(result)

    def _info(self, target: Target) -> Any:
        resource = kmock.resource(*target.gvr)
        if resource not in self.resources:
            raise error(404, "NotFound", "the server could not find the requested resource")
        info = self.resources[resource]
        if target.subresource is not None and target.subresource not in info.subresources:
            raise error(404, "NotFound", "the server could not find the requested resource")
        if info.namespaced and target.namespace is None and target.name is not None:
            raise error(404, "NotFound", "the server could not find the requested resource")
        return info

    def _body(self, raw: aiohttp.web.BaseRequest, body: bytes, info: Any) -> Any:
        if not body:
            return {}
        if raw.content_type.startswith("application/vnd.kubernetes.protobuf"):
            try:
                kind = "DeleteOptions" if raw.method == "DELETE" else info.kind
                return kube_protobuf.decode(body, kind)
            except kube_protobuf.ProtobufError as exc:
                raise error(415, "UnsupportedMediaType", str(exc)) from exc
        try:
            if raw.content_type == "application/apply-patch+yaml":
                return yaml.safe_load(body)
            return json.loads(body)
        except ValueError as exc:
            raise error(400, "BadRequest", f"the body is not valid: {exc}") from exc

    # -- reads ----------------------------------------------------------------------------

    def _key(self, target: Target, info: Any, name: str | None = None) -> Key:
        namespace = target.namespace if info.namespaced else None
        return (target.gvr, namespace, name or target.name or "")

    def _get(self, target: Target, info: Any) -> Manifest:
        key = self._key(target, info)
        if key not in self.store:
            raise not_found(target.gvr[2], key[2])
        return copy.deepcopy(self.store[key])

    def _query(self, target: Target, params: Any) -> Query:
        fields = Selector.parse(params.get("fieldSelector", ""))
        if target.name is not None:  # a watch on one object
            fields.equal["metadata.name"] = target.name
        return Query(target.gvr, target.namespace, Selector.parse(params.get("labelSelector", "")),
                     fields)

    def _select(self, query: Query) -> list[Manifest]:
        found = [obj for (gvr, _, _), obj in self.store.items()
                 if gvr == query.gvr and query.matches(obj)]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""),
                                            o["metadata"]["name"]))

    def _list(self, target: Target, info: Any, params: Any) -> Manifest:
        return {"apiVersion": target.api_version, "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(self._revision)},
                "items": copy.deepcopy(self._select(self._query(target, params)))}

    def _table(self, target: Target, found: Manifest) -> Manifest:
        """What `kubectl get` prints: a CRD's printer columns, or NAME and AGE."""
        columns = self._columns.get(target.gvr) or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        objects = found["items"] if "items" in found else [found]
        return {
            "apiVersion": "meta.k8s.io/v1", "kind": "Table",
            "metadata": {"resourceVersion": str(self._revision)},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0,
                 "description": "the object's name"},
                *({"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                   "priority": c.get("priority", 0), "description": c.get("description", "")}
                  for c in columns)],
            "rows": [{"cells": [obj["metadata"]["name"], *(
                _age(_lookup(obj, c["jsonPath"])) if c["type"] == "date"
                else _lookup(obj, c["jsonPath"]) for c in columns)],
                      "object": {"apiVersion": "meta.k8s.io/v1",
                                 "kind": "PartialObjectMetadata",
                                 "metadata": obj["metadata"]}} for obj in objects],
        }

    async def _watch(self, raw: aiohttp.web.BaseRequest, target: Target,
                     info: Any) -> aiohttp.web.StreamResponse:
        query = self._query(target, raw.query)
        since = raw.query.get("resourceVersion", "")
        initial = raw.query.get("sendInitialEvents") == "true"
        # Registered before the first await, so that no event falls between what is sent
        # first (the objects, or the events since `since`) and what the queue gets.
        watch = Watch(query)
        first: list[Manifest] = []
        if initial or since in ("", "0"):
            first = [{"type": "ADDED", "object": obj} for obj in self._select(query)]
        else:
            oldest = self._log[0][0] if self._log else self._revision + 1
            if len(self._log) == self._log.maxlen and int(since) < oldest - 1:
                first = [{"type": "ERROR", "object": {
                    "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410,
                    "reason": "Expired", "message": f"too old resource version: {since}"}}]
            else:
                first = [event for revision, gvr, event in self._log
                         if revision > int(since) and gvr == target.gvr
                         and query.matches(event["object"])]
        if initial:
            first.append({"type": "BOOKMARK", "object": {
                "apiVersion": target.api_version, "kind": info.kind, "metadata": {
                    "resourceVersion": str(self._revision),
                    "annotations": {"k8s.io/initial-events-end": "true"}}}})
        self._watches.append(watch)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        timeout = float(raw.query.get("timeoutSeconds") or 0) or None
        try:
            await response.prepare(raw)
            for event in first:
                await response.write(json.dumps(event).encode() + b"\n")
            if first and first[0]["type"] == "ERROR":
                return response
            async with asyncio.timeout(timeout):
                while True:
                    event = await watch.events.get()
                    await response.write(json.dumps(event).encode() + b"\n")
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._watches.remove(watch)
        return response

    # -- writes ---------------------------------------------------------------------------

    def _commit(self, key: Key, obj: Manifest, kind: str, dry_run: bool = False) -> Manifest:
        """Store (or remove, for DELETED) one object and tell the watches."""
        if kind != "DELETED":
            self._normalize(obj)
        if dry_run:
            return obj
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if kind == "DELETED":
            self.store.pop(key, None)
            self._applied.pop(key, None)
        else:
            self.store[key] = obj
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self._log.append((self._revision, key[0], event))
        for watch in self._watches:
            if watch.query.gvr == key[0] and watch.query.matches(obj):
                watch.events.put_nowait(event)
        if key[0] == CRD_GVR:
            self._serve_crd(obj, served=kind != "DELETED")
        return copy.deepcopy(obj)

    def _normalize(self, obj: Manifest) -> None:
        """What the API server writes into every object of a kind."""
        kind = obj.get("kind")
        if kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        elif kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type") == "RollingUpdate":
                strategy.setdefault("rollingUpdate", {})
                strategy["rollingUpdate"].setdefault("maxSurge", "25%")
                strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
        elif kind == "CustomResourceDefinition":
            names = obj.get("spec", {}).get("names", {})
            obj["status"] = {
                "acceptedNames": names,
                "storedVersions": [v["name"] for v in obj["spec"].get("versions", [])
                                   if v.get("storage")],
                "conditions": [
                    {"type": t, "status": "True", "reason": r, "message": m,
                     "lastTransitionTime": _now()}
                    for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                    ("Established", "InitialNamesAccepted",
                                     "the initial names have been accepted"))]}

    def _serve_crd(self, crd: Manifest, served: bool) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec.get("versions", []):
            gvr: Gvr = (spec["group"], version["name"], names["plural"])
            resource = kmock.resource(*gvr)
            if served and version.get("served", True):
                self.resources[resource] = kmock.ResourceInfo(
                    namespaced=spec.get("scope") == "Namespaced", kind=names["kind"],
                    singular=names.get("singular", names["kind"].lower()),
                    verbs={"get", "list", "watch", "create", "update", "patch", "delete",
                           "deletecollection"},
                    shortnames=set(names.get("shortNames", [])),
                    categories=set(names.get("categories", [])),
                    subresources=set(version.get("subresources", {})))
                self._columns[gvr] = version.get("additionalPrinterColumns", [])
            elif resource in self.resources:
                del self.resources[resource]
                self._columns.pop(gvr, None)
                for key in [k for k in self.store if k[0] == gvr]:
                    self._commit(key, self.store[key], "DELETED")

    def _create(self, target: Target, info: Any, data: Manifest, dry_run: bool) -> Manifest:
        obj = copy.deepcopy(data)
        self._check_type(obj, target, info)
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            if meta.get("namespace") not in (None, "", target.namespace):
                raise error(400, "BadRequest", "the namespace of the provided object does "
                            "not match the namespace sent on the request")
            meta["namespace"] = target.namespace
            namespace_key: Key = (("", "v1", "namespaces"), None, target.namespace or "")
            if namespace_key not in self.store:
                raise not_found("namespaces", target.namespace or "")
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise error(422, "Invalid", "metadata.name: Required value: name or "
                        "generateName is required")
        key = self._key(target, info, meta["name"])
        if key in self.store:
            raise error(409, "AlreadyExists", f'{target.gvr[2]} "{meta["name"]}" already '
                        "exists", name=meta["name"], kind=target.gvr[2])
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        for transient in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(transient, None)
        if "status" in info.subresources:
            obj.pop("status", None)  # written through /status only
        return self._commit(key, obj, "ADDED", dry_run)

    def _check_type(self, obj: Manifest, target: Target, info: Any) -> None:
        if obj.get("kind", info.kind) != info.kind or \
                obj.get("apiVersion", target.api_version) != target.api_version:
            raise error(400, "BadRequest", f"the body is a {obj.get('kind')} of "
                        f"{obj.get('apiVersion')}, the path is for {info.kind} of "
                        f"{target.api_version}")
        obj.update(apiVersion=target.api_version, kind=info.kind)

    def _update(self, target: Target, info: Any, old: Manifest, new: Manifest,
                dry_run: bool) -> Manifest:
        """`new`, made from `old` by a replace or a patch, stored as the API server would."""
        self._check_type(new, target, info)
        meta = new.setdefault("metadata", {})
        for kept in ("name", "namespace", "uid", "creationTimestamp", "generation",
                     "deletionTimestamp"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        if target.subresource == "status":
            new = {**old, "status": new.get("status")}
        elif "status" in info.subresources:
            new = {**{k: v for k, v in new.items() if k != "status"},
                   **({"status": old["status"]} if "status" in old else {})}
        def content(o: Manifest) -> Manifest:
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}
        if content(new) != content(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        key = self._key(target, info)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit(key, new, "DELETED", dry_run)
        return self._commit(key, new, "MODIFIED", dry_run)

    def _replace(self, target: Target, info: Any, data: Manifest, dry_run: bool) -> Manifest:
        old = self._get(target, info)
        wanted = data.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise error(409, "Conflict", f'Operation cannot be fulfilled on {target.gvr[2]} '
                        f'"{target.name}": the object has been modified; please apply your '
                        "changes to the latest version and try again",
                        name=target.name, kind=target.gvr[2])
        return self._update(target, info, old, copy.deepcopy(data), dry_run)

    def _patch(self, raw: aiohttp.web.BaseRequest, target: Target, info: Any, data: Any,
               dry_run: bool) -> Manifest:
        kind = raw.content_type
        if kind == "application/apply-patch+yaml":
            return self._apply(raw, target, info, data, dry_run)
        old = self._get(target, info)
        try:
            if kind == "application/merge-patch+json":
                new = kube_patch.merge_patch(old, data)
            elif kind == "application/json-patch+json":
                new = kube_patch.json_patch(old, data)
            elif kind == "application/strategic-merge-patch+json":
                if target.gvr[0] in self._crd_groups():
                    raise error(415, "UnsupportedMediaType", "strategic merge patch is not "
                                "supported for custom resources")
                new = kube_patch.strategic_merge(old, data)
            else:
                raise error(415, "UnsupportedMediaType", f"the patch type {kind!r} is not "
                            "supported")
        except kube_patch.PatchError as exc:
            raise error(422, "Invalid", f"the JSON patch could not apply: {exc}") from exc
        return self._update(target, info, old, new, dry_run)

    def _apply(self, raw: aiohttp.web.BaseRequest, target: Target, info: Any,
               applied: Manifest, dry_run: bool) -> Manifest:
        manager = raw.query.get("fieldManager")
        if not manager:
            raise error(400, "BadRequest", "fieldManager is required for apply requests")
        key = self._key(target, info)
        if applied.get("metadata", {}).get("name") not in (None, target.name):
            raise error(400, "BadRequest", "the name of the object does not match the URL")
        if key not in self.store:
            created = self._create(Target(target.gvr, target.namespace, None, None), info,
                                   applied, dry_run)
        else:
            old = self._get(target, info)
            previous = self._applied.get(key, {}).get(manager)
            created = self._update(target, info, old,
                                   kube_patch.apply(old, applied, previous), dry_run)
        if not dry_run:
            self._applied.setdefault(key, {})[manager] = copy.deepcopy(applied)
        return created

    def _delete(self, target: Target, info: Any, dry_run: bool) -> Manifest:
        old = self._get(target, info)
        key = self._key(target, info)
        if old["metadata"].get("finalizers"):
            old["metadata"].setdefault("deletionTimestamp", _now())
            return self._commit(key, old, "MODIFIED", dry_run)
        if target.gvr == ("", "v1", "namespaces") and not dry_run:
            for inner in [k for k in self.store if k[1] == target.name]:
                self._commit(inner, self.store[inner], "DELETED")
        return self._commit(key, old, "DELETED", dry_run)

    def _crd_groups(self) -> set[str]:
        return {obj["spec"]["group"] for (gvr, _, _), obj in self.store.items()
                if gvr == CRD_GVR}

    # -- discovery and OpenAPI ------------------------------------------------------------

    def _get_resources(self) -> Any:
        return kmock.KubernetesScaffold._get_resources(self)

    def _group_versions(self) -> dict[str, list[str]]:
        versions: dict[str, set[str]] = {}
        for resource in self._get_resources():
            versions.setdefault(resource.group, set()).add(resource.version)
        return {g: sorted(v, key=_version_order) for g, v in versions.items()}

    async def _serve_server_version(self, request: Any) -> Any:
        return {"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64",
                "gitTreeState": "clean", "goVersion": "go1.25.0", "compiler": "gc"}

    async def _serve_apis(self, request: Any) -> Any:
        return {"apiVersion": "v1", "kind": "APIGroupList",
                "groups": [self._group(g, v) for g, v in sorted(self._group_versions().items())
                           if g]}

    async def _serve_group(self, request: Any) -> Any:
        versions = self._group_versions().get(request.resource.group)
        if not versions:
            raise error(404, "NotFound", "the server could not find the requested resource")
        return {"apiVersion": "v1", "kind": "APIGroup",
                **self._group(request.resource.group, versions)}

    @staticmethod
    def _group(group: str, versions: list[str]) -> Manifest:
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": listed, "preferredVersion": listed[0]}

    async def _serve_version(self, request: Any) -> Any:
        served = dict(await super()._serve_version(request))
        if request.resource.group == "":
            served["groupVersion"] = request.resource.version  # kmock says "/v1"
        # Subresources without their parent's short names and categories, or kubectl warns
        # that "chst" could also mean chargingstations/status, and `get all` asks for them.
        served["resources"] = [{**r, "shortNames": [], "categories": []} if "/" in r["name"]
                               else r
                               for r in served["resources"]]
        return served

    def _openapi(self, path: str) -> Manifest:
        """The OpenAPI v3 index, and per group-version documents whose PATCH operations take
        `fieldValidation`: what kubectl and Helm check before they apply."""
        documents: dict[str, list[Any]] = {}
        for resource in self._get_resources():
            prefix = f"apis/{resource.group}/{resource.version}" if resource.group \
                else f"api/{resource.version}"
            documents.setdefault(prefix, []).append(resource)
        digests = {p: hashlib.sha256(repr(sorted(map(repr, r))).encode()).hexdigest()[:16]
                   for p, r in documents.items()}
        if path.rstrip("/") == "/openapi/v3":
            return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={digests[p]}"}
                              for p in sorted(documents)}}
        prefix = path.removeprefix("/openapi/v3/").strip("/")
        if prefix not in documents:
            raise error(404, "NotFound", f"no OpenAPI document for {prefix}")
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.35.0"},
                "paths": dict(self._operations(prefix, documents[prefix])),
                "components": {"schemas": {}}}

    def _operations(self, prefix: str, resources: list[Any]) -> Iterator[tuple[str, Manifest]]:
        for resource in resources:
            info = self.resources[resource]
            scope = "/namespaces/{namespace}" if info.namespaced else ""
            gvk = {"group": resource.group, "version": resource.version, "kind": info.kind}
            yield f"/{prefix}{scope}/{resource.plural}/{{name}}", {"patch": {
                "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
                "parameters": [{"name": "fieldValidation", "in": "query",
                                "schema": {"type": "string", "uniqueItems": True}}],
                "responses": {"200": {"description": "OK"}}}}


class KubeMock:
    """The emulator serving HTTP on 127.0.0.1 from a background thread. With `crds`, those
    CustomResourceDefinitions exist from the start (the operator's tests); without, what is
    installed (by helm, by kubectl) is served."""

    def __init__(self, crds: tuple[Path, ...] = (CHARGING_STATIONS,)) -> None:
        self.url = ""
        self.emulator: Emulator | None = None
        self.crds = crds
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

    def objects(self, gvr: Gvr) -> list[Manifest]:
        """A copy of the stored objects of a resource, from any thread."""
        assert self.emulator is not None
        emulator = self.emulator

        async def copied() -> list[Manifest]:
            return [copy.deepcopy(o) for (g, _, _), o in emulator.store.items() if g == gvr]

        return asyncio.run_coroutine_threadsafe(copied(), self._loop).result(10)

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
            for path in self.crds:
                crd = yaml.safe_load(path.read_text())
                emulator._commit((CRD_GVR, None, crd["metadata"]["name"]), {
                    **crd, "metadata": {**crd["metadata"], "uid": str(uuid.uuid4()),
                                        "creationTimestamp": _now(), "generation": 1}},
                    "ADDED")
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

