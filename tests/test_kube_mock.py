"""The Kubernetes API emulator behaves as the API server does where kopf, kubectl and helm
rely on it (tests/kube_mock.py): each write, its conflicts and errors, dry runs, selectors,
watches, Tables and CRDs; real kubectl where it is the client."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import k8s_tools
from tests.kube_mock import KubeMock
from tests.kube_patch import apply, strategic_merge

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}},
}
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
STATIONS = "/apis/csms.dev/v1alpha1/namespaces/default/chargingstations"


class Kube:
    def __init__(self, mock: KubeMock, folder: Path) -> None:
        self.mock = mock
        self.http = httpx.Client(base_url=mock.url, timeout=10)
        config = mock.kubeconfig(folder / "kubeconfig")
        self.env = {**os.environ, "KUBECONFIG": str(config),
                    "KUBECACHEDIR": str(folder / "cache")}

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(k8s_tools.ensure()["kubectl"]), *args], input=stdin,
                              capture_output=True, text=True, env=self.env, timeout=60)

    def send(self, method: str, path: str, body: Any = None,
             kind: str = "application/json") -> httpx.Response:
        return self.http.request(method, path, content=None if body is None
                                 else json.dumps(body), headers={"Content-Type": kind})


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    mock = KubeMock().start()
    kube = Kube(mock, tmp_path)
    yield kube
    kube.http.close()
    mock.stop()


def test_creates_stamp_objects_and_refuse_duplicates_and_missing_namespaces(kube: Kube) -> None:
    created = kube.send("POST", DEPLOYMENTS, DEPLOYMENT)
    assert created.status_code == 201
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert meta["namespace"] == "default"  # from the URL
    # The API server's defaults, without which `kubectl describe` panics.
    assert created.json()["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%", "maxUnavailable": "25%"}
    again = kube.send("POST", DEPLOYMENTS, DEPLOYMENT)
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
    elsewhere = kube.send("POST", "/apis/apps/v1/namespaces/nowhere/deployments", DEPLOYMENT)
    assert elsewhere.status_code == 404 and elsewhere.json()["reason"] == "NotFound"
    named = kube.send("POST", "/api/v1/namespaces/default/secrets", {
        "metadata": {"generateName": "s-"}, "stringData": {"k": "v"}})
    assert named.json()["metadata"]["name"].startswith("s-")
    assert named.json()["data"] == {"k": "dg=="} and "stringData" not in named.json()


def test_replace_checks_the_resource_version_and_bumps_the_generation(kube: Kube) -> None:
    created = kube.send("POST", DEPLOYMENTS, DEPLOYMENT).json()
    changed = json.loads(json.dumps(created))
    changed["spec"]["replicas"] = 3
    replaced = kube.send("PUT", f"{DEPLOYMENTS}/web", changed)
    assert replaced.status_code == 200 and replaced.json()["metadata"]["generation"] == 2
    stale = kube.send("PUT", f"{DEPLOYMENTS}/web", changed)  # the first resourceVersion
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    # Status goes through /status only, and does not count as a new generation.
    status = kube.send("PATCH", f"{DEPLOYMENTS}/web/status", {"status": {"replicas": 3}},
                       "application/merge-patch+json").json()
    assert status["status"] == {"replicas": 3} and status["metadata"]["generation"] == 2
    ignored = kube.send("PATCH", f"{DEPLOYMENTS}/web", {"status": {"replicas": 9}},
                        "application/merge-patch+json").json()
    assert ignored["status"] == {"replicas": 3}


def test_patches_of_every_kind(kube: Kube) -> None:
    kube.send("POST", DEPLOYMENTS, DEPLOYMENT)
    # Strategic merge: containers merge by name; JSON merge patch replaces the list.
    strategic = kube.send("PATCH", f"{DEPLOYMENTS}/web", {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "b:2"}]}}}},
        "application/strategic-merge-patch+json").json()
    assert [c["image"] for c in strategic["spec"]["template"]["spec"]["containers"]] == [
        "a:1", "b:2"]
    merged = kube.send("PATCH", f"{DEPLOYMENTS}/web", {"metadata": {"labels": {"app": None,
                                                                                "x": "1"}}},
                       "application/merge-patch+json").json()
    assert merged["metadata"]["labels"] == {"x": "1"}
    version = merged["metadata"]["resourceVersion"]
    test_ok = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
               {"op": "add", "path": "/metadata/labels/y", "value": "2"}]
    assert kube.send("PATCH", f"{DEPLOYMENTS}/web", test_ok,
                     "application/json-patch+json").status_code == 200
    failed = kube.send("PATCH", f"{DEPLOYMENTS}/web", test_ok, "application/json-patch+json")
    assert failed.status_code == 422 and failed.json()["reason"] == "Invalid"
    unknown = kube.send("PATCH", f"{DEPLOYMENTS}/web", {}, "application/x-nothing")
    assert unknown.status_code == 415
    # Custom resources take no strategic merge patch, as on a real server.
    kube.send("POST", STATIONS, {"apiVersion": "csms.dev/v1alpha1", "kind": "ChargingStation",
                                 "metadata": {"name": "cp-1"}, "spec": {}})
    assert kube.send("PATCH", f"{STATIONS}/cp-1", {"spec": {}},
                     "application/strategic-merge-patch+json").status_code == 415


def test_server_side_apply_creates_then_prunes_only_its_own_fields(kube: Kube) -> None:
    path = "/api/v1/namespaces/default/configmaps/c?fieldManager=helm"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "1", "b": "2"}}
    assert kube.send("PATCH", path, body, "application/apply-patch+yaml").status_code == 200
    kube.send("PATCH", "/api/v1/namespaces/default/configmaps/c", {"data": {"mine": "x"}},
              "application/merge-patch+json")
    del body["data"]["b"]  # the chart dropped a key
    applied = kube.send("PATCH", path, body, "application/apply-patch+yaml").json()
    assert applied["data"] == {"a": "1", "mine": "x"}
    nameless = kube.send("PATCH", "/api/v1/namespaces/default/configmaps/c", body,
                         "application/apply-patch+yaml")
    assert nameless.status_code == 400  # no fieldManager


def test_dry_runs_store_nothing(kube: Kube) -> None:
    dry = kube.send("POST", f"{DEPLOYMENTS}?dryRun=All", DEPLOYMENT)
    assert dry.status_code == 201
    assert kube.send("GET", f"{DEPLOYMENTS}/web").status_code == 404
    listed = kube.kubectl("apply", "--dry-run=server", "-f", "-",
                          stdin=yaml.safe_dump(DEPLOYMENT))
    assert listed.returncode == 0, listed.stderr
    assert kube.kubectl("get", "deployments", "-o", "name").stdout == ""
    kube.send("POST", DEPLOYMENTS, DEPLOYMENT)
    deleted = kube.kubectl("delete", "deployment", "web", "--dry-run=server")
    assert deleted.returncode == 0, deleted.stderr
    assert kube.send("GET", f"{DEPLOYMENTS}/web").status_code == 200


def test_lists_filter_by_labels_and_fields(kube: Kube) -> None:
    for name, labels in (("one", {"tier": "a", "owner": "helm"}), ("two", {"tier": "b"}),
                         ("three", {"tier": "c", "owner": "helm"})):
        kube.send("POST", "/api/v1/namespaces/default/configmaps",
                  {"metadata": {"name": name, "labels": labels}})

    def names(query: str) -> list[str]:
        found = kube.send("GET", f"/api/v1/namespaces/default/configmaps?{query}").json()
        assert found["kind"] == "ConfigMapList" and found["metadata"]["resourceVersion"]
        return [item["metadata"]["name"] for item in found["items"]]

    assert names("labelSelector=owner=helm") == ["one", "three"]
    assert names("labelSelector=tier in (a,b),!owner") == ["two"]
    assert names("labelSelector=tier notin (a)") == ["three", "two"]
    assert names("labelSelector=tier!=a,owner") == ["three"]
    assert names("fieldSelector=metadata.name=two") == ["two"]


def test_watches_resume_from_a_resource_version(kube: Kube) -> None:
    first = kube.send("POST", "/api/v1/namespaces/default/configmaps",
                      {"metadata": {"name": "before", "labels": {"w": "1"}}}).json()
    since = first["metadata"]["resourceVersion"]
    kube.send("POST", "/api/v1/namespaces/default/configmaps",
              {"metadata": {"name": "after", "labels": {"w": "1"}}})
    kube.send("POST", "/api/v1/namespaces/default/configmaps",
              {"metadata": {"name": "other", "labels": {"w": "2"}}})

    def events(query: str) -> list[tuple[str, str]]:
        with kube.http.stream("GET", f"/api/v1/namespaces/default/configmaps?watch=true&"
                              f"timeoutSeconds=1&{query}") as stream:
            assert stream.headers["Content-Type"].startswith("application/json")
            return [(e["type"], e["object"]["metadata"].get("name", ""))
                    for e in map(json.loads, stream.iter_lines())]

    # Only what happened after `since`, and only what the selector selects.
    assert events(f"resourceVersion={since}&labelSelector=w=1") == [("ADDED", "after")]
    # WatchList: the objects, then a bookmark that ends the initial events.
    initial = events("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&"
                     "allowWatchBookmarks=true&labelSelector=w=1")
    assert initial == [("ADDED", "after"), ("ADDED", "before"), ("BOOKMARK", "")]


def test_kubectl_get_prints_the_crds_columns(kube: Kube) -> None:
    kube.send("POST", STATIONS, {"apiVersion": "csms.dev/v1alpha1", "kind": "ChargingStation",
                                 "metadata": {"name": "cp-1"}, "spec": {}})
    kube.send("PATCH", f"{STATIONS}/cp-1/status", {"status": {
        "stationId": "CP-1", "connected": True, "protocol": "ocpp2.0.1", "pod": "csms-0"}},
        "application/merge-patch+json")
    table = kube.kubectl("get", "chst")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "STATION", "CONNECTED", "PROTOCOL", "POD", "LAST",
                              "SEEN", "AGE"]
    assert row.split()[:5] == ["cp-1", "CP-1", "true", "ocpp2.0.1", "csms-0"]
    assert row.split()[-1].endswith("s")  # the age, as a duration


def test_crds_are_served_once_created_and_their_objects_go_with_them(kube: Kube) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                              "shortNames": ["wg"]},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    created = kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(crd))
    assert created.returncode == 0, created.stderr
    stored = kube.send("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "widgets.example.com").json()
    assert {c["type"] for c in stored["status"]["conditions"]} == {"Established",
                                                                   "NamesAccepted"}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widget)).returncode == 0
    assert kube.kubectl("get", "wg", "-o", "name").stdout.split() == ["widget.example.com/w"]
    assert kube.kubectl("delete", "crd", "widgets.example.com").returncode == 0
    assert kube.send("GET", "/apis/example.com/v1/namespaces/default/widgets/w"
                     ).status_code == 404


def test_finalizers_hold_a_deletion_until_they_are_removed(kube: Kube) -> None:
    kube.send("POST", STATIONS, {"apiVersion": "csms.dev/v1alpha1", "kind": "ChargingStation",
                                 "metadata": {"name": "cp-1", "finalizers": ["x"]}})
    held = kube.send("DELETE", f"{STATIONS}/cp-1").json()
    assert held["metadata"]["deletionTimestamp"]
    assert kube.send("GET", f"{STATIONS}/cp-1").status_code == 200
    kube.send("PATCH", f"{STATIONS}/cp-1", {"metadata": {"finalizers": None}},
              "application/merge-patch+json")
    assert kube.send("GET", f"{STATIONS}/cp-1").status_code == 404


def test_strategic_merge_directives() -> None:
    target = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
              "args": ["x", "y"], "keep": 1, "drop": 2}
    patch = {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "image": "2"}],
             "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
             "$deleteFromPrimitiveList/args": ["x"], "$retainKeys": ["containers", "args",
                                                                       "keep"]}
    assert strategic_merge(target, patch) == {
        "containers": [{"name": "c", "image": "2"}, {"name": "b", "image": "1"}],
        "args": ["y"], "keep": 1}
    assert strategic_merge({"spec": {"a": 1, "b": 2}},
                           {"spec": {"$patch": "replace", "c": 3}}) == {"spec": {"c": 3}}


def test_apply_prunes_only_what_the_manager_set_before() -> None:
    live = {"data": {"a": "1", "b": "2", "theirs": "3"}, "spec": {"x": [1, 2]}}
    before = {"data": {"a": "1", "b": "2"}, "spec": {"x": [1, 2]}}
    now = {"data": {"a": "9"}, "spec": {"x": [3]}}
    assert apply(live, now, before) == {"data": {"a": "9", "theirs": "3"}, "spec": {"x": [3]}}
