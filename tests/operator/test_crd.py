"""The CRD the chart ships: current with the spec schema, valid Kubernetes, and every example
resource valid against it."""

from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate
import pytest
import yaml

from csms_operator.crd import crd, render

ROOT = Path(__file__).parent.parent.parent
CRD_FILE = ROOT / "charts" / "csms" / "crds" / "chargingstations.yaml"


def schema() -> dict[str, Any]:
    document = yaml.safe_load(CRD_FILE.read_text())
    result: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def example_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_shipped_crd_is_rendered_from_the_spec_schema() -> None:
    assert CRD_FILE.read_text() == render(), "run `make crd`"


def test_the_crd_passes_kubernetes_validate() -> None:
    kubernetes_validate.validate(crd(), kubernetes_validate.latest_version(), strict=True)


def test_the_crd_is_structural_and_names_what_kubectl_shows() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["chst"] and spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Station", "Connected", "Protocol", "Pod", "Last Seen", "Age"]
    text = yaml.safe_dump(version["schema"])
    assert "uniqueItems" not in text and "additionalProperties: false" not in text
    fields = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "password" not in fields and fields["passwordSecretRef"]["required"] == ["name"]
    assert fields["stationId"]["maxLength"] == 48
    assert fields["heartbeatInterval"]["minimum"] == 1


@pytest.mark.parametrize("document", [d for d in example_documents()
                                      if d.get("kind") == "ChargingStation"],
                         ids=lambda d: d["metadata"]["name"])
def test_every_example_resource_validates_against_the_crd(document: dict[str, Any]) -> None:
    jsonschema_rs.validate(schema(), document)


def test_example_secrets_are_valid_kubernetes() -> None:
    secrets = [d for d in example_documents() if d.get("kind") == "Secret"]
    assert secrets
    for secret in secrets:
        kubernetes_validate.validate(secret, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(("change", "field"), [
    ({"securityProfile": 5}, "securityProfile"),
    ({"stationId": "x" * 49}, "stationId"),
    ({"stationId": "has:colon"}, "stationId"),
    ({"protocols": ["ocpp3"]}, "protocols"),
    ({"heartbeatInterval": 0}, "heartbeatInterval"),
    ({"passwordSecretRef": {"key": "p"}}, "passwordSecretRef"),
])
def test_bad_resources_fail_the_crd_schema(change: dict[str, Any], field: str) -> None:
    document = {"apiVersion": "csms.dev/v1alpha1", "kind": "ChargingStation",
                "metadata": {"name": "x"}, "spec": change}
    with pytest.raises(jsonschema_rs.ValidationError) as caught:
        jsonschema_rs.validate(schema(), document)
    assert field in str(caught.value)


# The short names of the built-in resources of Kubernetes 1.35 (`kubectl api-resources`):
# a short name of ours among them would never show our resources (`cs` is componentstatuses).
BUILT_IN_SHORT_NAMES = {
    "cs", "cm", "ep", "ev", "limits", "ns", "no", "pvc", "pv", "po", "rc", "quota", "sa", "svc",
    "crd", "crds", "ds", "deploy", "rs", "sts", "hpa", "cj", "csr", "ing", "netpol", "pdb",
    "pc", "sc", "vac", "ipa", "svccidr", "eps"}


def test_no_short_name_is_taken_by_a_built_in_resource() -> None:
    names = crd()["spec"]["names"]
    assert not set(names["shortNames"]) & BUILT_IN_SHORT_NAMES
    assert names["plural"] not in BUILT_IN_SHORT_NAMES
