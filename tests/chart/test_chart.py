"""The Helm chart, rendered by the real `helm` for every scenario in `charts/csms/ci/`:
lint, Kubernetes schemas for 1.29 through 1.35, custom resources against their CRDs, the
values schema's refusals, and each promise of the chart as an assertion on the objects."""

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests import k8s_tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "csms"
SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
KUBERNETES = [f"1.{minor}.0" for minor in range(29, 36)]
# What a chart may name without shipping the CRD: the Prometheus Operator's and Gateway API's.
FOREIGN_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "GrafanaDashboard",
                 "HTTPRoute"}
MONITORING = "monitoring.coreos.com/v1"


@pytest.fixture(scope="session")
def helm() -> Path:
    return k8s_tools.ensure()["helm"]


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    done = run_helm(helm, "template", "rel", str(CHART), "--namespace", "csms",
                    "--api-versions", MONITORING, *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def scenario(helm: Path, name: str, *args: str) -> list[dict[str, Any]]:
    return render(helm, "-f", str(CHART / "ci" / name), *args)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    (found,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    return found


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]
    yield from spec["containers"]


@pytest.mark.parametrize("name", [None, *SCENARIOS])
def test_the_chart_lints_strictly(helm: Path, name: str | None) -> None:
    args = ["-f", str(CHART / "ci" / name)] if name else []
    done = run_helm(helm, "lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_object_passes_the_kubernetes_schemas_of_1_29_to_1_35(
    helm: Path, name: str
) -> None:
    crd = yaml.safe_load((CHART / "crds" / "chargingstations.yaml").read_text())
    station_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in scenario(helm, name):
        if doc["kind"] == "ChargingStation":
            jsonschema.validate(doc, station_schema)
        elif doc["kind"] not in FOREIGN_KINDS:
            for version in KUBERNETES:
                kubernetes_validate.validate(doc, version, strict=True)


def test_the_examples_are_valid_chargingstations() -> None:
    crd = yaml.safe_load((CHART / "crds" / "chargingstations.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stations = [d for f in (ROOT / "examples" / "stations").glob("*.yaml")
                for d in yaml.safe_load_all(f.read_text()) if d and d["kind"] == "ChargingStation"]
    assert stations
    for doc in stations:
        jsonschema.validate(doc, schema)


BAD_VALUES = [
    ("image.tag=latest", "/image/tag"),
    ("image.digest=sha256:nope", "/image/digest"),
    ("central.replicaCount=0", "/central/replicaCount"),
    ("central.securityContext.readOnlyRootFilesystem=false",
     "/central/securityContext/readOnlyRootFilesystem"),
    ("central.podSecurityContext.runAsNonRoot=false", "/central/podSecurityContext/runAsNonRoot"),
    ("central.gracefulTimeout=2", "/central/gracefulTimeout"),
    ("ports.public=70000", "/ports/public"),
    ("service.type=Headless", "/service/type"),
    ("api.token=short", "/api/token"),
    ("redis.url=redis://user:secret@redis:6379", "/redis/url"),
    ("redis.url=memcached://host", "/redis/url"),
    ("autoscaling.targetCPUUtilizationPercentage=150",
     "/autoscaling/targetCPUUtilizationPercentage"),
    ("pdb.maxUnavailable=0", "/pdb/maxUnavailable"),
    ("serviceMonitor.interval=often", "/serviceMonitor/interval"),
    ("central.env.PORT=1", "'PORT' does not match"),
    ("unknownKey=1", "unknownKey"),
    ("httpRoute.enabled=true", "/httpRoute/parentRefs"),
    ("tracing.endpoint=collector:4317", "/tracing/endpoint"),
    ("tracing.sampler=sometimes", "/tracing/sampler"),
    ("tracing.samplerArg=2", "/tracing/samplerArg"),
    ("prometheusRule.thresholds.callErrorRatio=2", "/prometheusRule/thresholds/callErrorRatio"),
    ("prometheusRule.thresholds.drainStuckAfter=soon",
     "/prometheusRule/thresholds/drainStuckAfter"),
]


@pytest.mark.parametrize(("setting", "named"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_the_values_schema_refuses_bad_values(helm: Path, setting: str, named: str) -> None:
    done = run_helm(helm, "template", "rel", str(CHART), "--set", setting)
    assert done.returncode != 0
    assert named in done.stderr, done.stderr


@pytest.mark.parametrize(("settings", "message"), [
    (["central.drainSpread=40"], "drainSpread must be below"),
    (["autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"], "minReplicas"),
    (["redis.bundled.enabled=false"], "the operator writes the registry to Redis"),
    (["redis.bundled.enabled=false", "operator.enabled=false"], "more than one pod"),
    (["ingress.enabled=true", "httpRoute.enabled=true", "httpRoute.parentRefs[0].name=g"],
     "not both"),
])
def test_rules_across_values_stop_the_install(helm: Path, settings: list[str],
                                              message: str) -> None:
    args = [a for s in settings for a in ("--set", s)]
    done = run_helm(helm, "template", "rel", str(CHART), *args)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_the_central_pods_keep_every_promise(helm: Path) -> None:
    docs = render(helm)
    central = one(docs, "Deployment", "-central")
    spec = central["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    # Restricted Pod Security Standard.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int)
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    # Probes on the internal port; the drain fits in the grace period after the pause.
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "internal",
                                               "scheme": "HTTP"}
    config = one(docs, "ConfigMap", "-config")["data"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > pause + int(config["CSMS_GRACEFUL_TIMEOUT"])
    assert float(config["CSMS_DRAIN_SPREAD"]) < float(config["CSMS_GRACEFUL_TIMEOUT"])
    assert (config["CSMS_PORT"], config["CSMS_INTERNAL_PORT"]) == ("9000", "9001")
    # The pod name prefixes the owner ids; the API tokens come from a mounted Secret.
    env = {e["name"]: e for e in container["env"]}
    assert env["CSMS_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert config["CSMS_API_TOKEN_FILE"] == "/etc/csms/api/tokens"
    assert "CSMS_REDIS_URL" in env and "$(REDIS_PASSWORD)" in env["CSMS_REDIS_URL"]["value"]
    # Resources, no latest tag, checksums that roll the pods, one pod at a time.
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert not container["image"].endswith(":latest") and ":" in container["image"]
    annotations = central["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/api"} <= set(annotations)
    assert central["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    # The next old pod is taken only after the previous one has finished draining.
    assert central["spec"]["minReadySeconds"] >= pause + float(config["CSMS_DRAIN_SPREAD"])
    assert [t["topologyKey"] for t in spec["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert {v["mountPath"] for v in container["volumeMounts"]} >= {"/tmp"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_selectors_carry_no_version_and_no_image_is_latest(helm: Path, name: str) -> None:
    for doc in scenario(helm, name):
        selector = (doc.get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels", selector if doc["kind"] == "Service" else {})
        assert "app.kubernetes.io/version" not in labels and "helm.sh/chart" not in labels
        if doc["kind"] in ("Deployment", "Pod"):
            for c in containers(doc):
                assert not c["image"].endswith(":latest"), c["image"]
                assert c.get("resources", {}).get("limits", {}).get("memory"), doc["kind"]


def test_the_pdb_and_the_autoscaler(helm: Path) -> None:
    docs = scenario(helm, "production-values.yaml")
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    hpa = one(docs, "HorizontalPodAutoscaler")
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "csms_connected_stations"
    assert metrics["Pods"]["pods"]["target"]["averageValue"] == "5000"
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300 and down["policies"][0]["value"] == 1
    assert "replicas" not in one(docs, "Deployment", "-central")["spec"]


def test_the_ingress_routes_only_ocpp_with_long_websocket_timeouts(helm: Path) -> None:
    ingress = one(scenario(helm, "production-values.yaml"), "Ingress")
    paths = [p for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/ocpp/", "Prefix")]
    assert {p["backend"]["service"]["port"]["name"] for p in paths} == {"ocpp"}
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$request_uri"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert notes["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"][0]["secretName"] == "ocpp-example-com-tls"


def test_profile_3_behind_the_ingress_passes_the_subject_to_csms(helm: Path) -> None:
    docs = scenario(helm, "profile3-ingress-values.yaml")
    notes = one(docs, "Ingress")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/auth-tls-secret"] == "csms/stations-ca"
    assert notes["nginx.ingress.kubernetes.io/auth-tls-verify-client"] == "optional"
    config = one(docs, "ConfigMap", "-config")["data"]
    assert config["CSMS_CLIENT_CERT_HEADER"] == "ssl-client-subject-dn"
    assert config["CSMS_PROXY_HEADERS"] == "true"


def test_profile_3_with_passthrough_uses_csms_own_tls(helm: Path) -> None:
    docs = scenario(helm, "profile3-passthrough-values.yaml")
    notes = one(docs, "Ingress")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/ssl-passthrough"] == "true"
    config = one(docs, "ConfigMap", "-config")["data"]
    assert config["CSMS_SSL_CERTFILE"] == "/etc/csms/tls/tls.crt"
    assert config["CSMS_SSL_CA_CERTS"] == "/etc/csms/client-ca/ca.crt"
    (container,) = containers(one(docs, "Deployment", "-central"))
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_the_http_route_has_no_timeouts(helm: Path) -> None:
    route = one(scenario(helm, "gateway-api-values.yaml"), "HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/ocpp/"}}]
    assert "timeouts" not in rule


def test_optional_resources_are_off_by_default(helm: Path) -> None:
    kinds = {d["kind"] for d in render(helm)}
    assert not kinds & {"Ingress", "HTTPRoute", "HorizontalPodAutoscaler", "NetworkPolicy",
                        "ServiceMonitor"}
    assert kinds >= {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"}


def test_tracing_sets_the_standard_otel_variables_only_with_an_endpoint(helm: Path) -> None:
    def otel(*settings: str) -> dict[str, Any]:
        docs = render(helm, *(a for s in settings for a in ("--set", s)))
        central = next(d for d in docs if d["kind"] == "Deployment"
                       and d["metadata"]["name"] == "rel-csms-central")
        (container,) = central["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]
                if e["name"].startswith("OTEL_")}

    assert otel() == {}
    env = otel("tracing.endpoint=http://collector.observability:4318",
               "tracing.resourceAttributes.team=ev", "tracing.headersSecret=otlp-auth")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "rel-csms"
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == (
        "parentbased_traceidratio", "0.01")
    attributes = dict(a.split("=", 1) for a in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes == {"k8s.pod.name": "$(CSMS_POD_NAME)", "k8s.namespace.name": "csms",
                          "service.version": "0.1.0", "team": "ev"}
    # The exporter's headers (an API key, say) only from a Secret.
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {
        "secretKeyRef": {"name": "otlp-auth", "key": "headers"}}


def test_the_service_monitor_needs_its_crd_and_carries_the_release_label(helm: Path) -> None:
    without = run_helm(helm, "template", "rel", str(CHART), "--set", "serviceMonitor.enabled=true")
    assert "ServiceMonitor" not in without.stdout
    docs = scenario(helm, "production-values.yaml")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "internal"
    # The operator's /metrics, from its pod (it has no Service).
    pods = one(docs, "PodMonitor")
    assert pods["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    operator = next(d for d in docs if d["kind"] == "Deployment"
                    and d["metadata"]["name"].endswith("-operator"))
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert {"name": "CSMS_OPERATOR_METRICS_PORT", "value": "8081"} in container["env"]


def test_the_network_policy_admits_stations_and_monitoring_only(helm: Path) -> None:
    policy = one(scenario(helm, "production-values.yaml"), "NetworkPolicy")
    ingress = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["spec"]["ingress"]}
    assert set(ingress) == {("ocpp",), ("internal",)}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert {53, 6379} <= egress_ports


def test_the_operator_runs_alone_with_exactly_the_documented_permissions(helm: Path) -> None:
    docs = render(helm)
    operator = one(docs, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = containers(operator)
    assert container["args"][0] == "operator"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): tuple(r["verbs"])
             for r in one(docs, "ClusterRole")["rules"]}
    assert rules == {
        (("csms.dev",), ("chargingstations",)): ("get", "list", "watch", "patch", "update"),
        (("csms.dev",), ("chargingstations/status",)): ("get", "patch", "update"),
        (("",), ("secrets",)): ("get", "list", "watch"),
        (("", "events.k8s.io"), ("events",)): ("create", "patch"),
        (("",), ("namespaces",)): ("list", "watch"),
        (("apiextensions.k8s.io",), ("customresourcedefinitions",)): ("list", "watch"),
    }
    readme = (ROOT / "README.md").read_text()
    for (groups, resources), verbs in rules.items():  # the README's table says the same
        named = ", ".join(g or "(core)" for g in groups)
        assert f"| {named} | `{resources[0]}` | {', '.join(verbs)} |" in readme, resources
    one_namespace = render(helm, "--set", "operator.watchNamespace=stations")
    assert one(one_namespace, "Role")["metadata"]["namespace"] == "stations"
    assert not by_kind(one_namespace, "ClusterRole")


def test_the_helm_test_connects_through_the_service_and_checks(helm: Path) -> None:
    docs = render(helm)
    pod = one(docs, "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "csms simulate --url=ws://rel-csms:9000/ocpp" in script and "--check" in script
    stations = by_kind(docs, "ChargingStation")
    assert [s["metadata"]["name"] for s in stations] == [
        "rel-csms-test-0001", "rel-csms-test-0002", "rel-csms-test-0003"]


def test_the_crd_is_in_crds_and_the_bundled_redis_is_the_official_image(helm: Path) -> None:
    assert (CHART / "crds" / "chargingstations.yaml").exists()
    redis = one(scenario(helm, "bundled-redis-values.yaml"), "Deployment", "-redis")
    (container,) = containers(redis)
    assert container["image"].startswith("docker.io/library/redis:")
    assert "$(REDIS_PASSWORD)" in container["args"]


def test_every_key_of_values_yaml_has_a_comment_above_it() -> None:
    """helm-docs' convention: `# -- text` documents a key and its whole value (a default
    map or list); a section's own keys each need their comment."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    ancestors: list[tuple[int, bool]] = []  # (indent, documented as a whole value)
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(stripped)
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        above = lines[number - 1].strip()
        if not any(whole for _, whole in ancestors):
            assert above.startswith("#"), f"values.yaml:{number + 1}: {stripped!r} has no comment"
        ancestors.append((indent, above.startswith("# --")))


def test_every_csms_setting_is_reachable_from_values(helm: Path) -> None:
    import dataclasses

    from csms.config import Settings, env_key

    args = []
    for field in dataclasses.fields(Settings):
        args += ["--set-string", f"central.env.{env_key(field.name)}=x"]
    config = one(render(helm, *args), "ConfigMap", "-config")["data"]
    assert all(config[env_key(f.name)] == "x" for f in dataclasses.fields(Settings))


def test_the_helm_test_trusts_csms_own_certificate_when_it_serves_tls(helm: Path) -> None:
    docs = scenario(helm, "profile3-passthrough-values.yaml")
    pod = one(docs, "Pod", "-test")
    script = pod["spec"]["containers"][0]["args"][0]
    assert "--url=wss://rel-csms:9000/ocpp --ca-certs=/etc/csms/tls/ca.crt" in script
    assert {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v} == {
        "csms-server-tls"}
