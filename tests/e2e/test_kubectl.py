"""The real kubectl against the Kubernetes API emulator: `kubectl get chst` lists the
stations, while `cs` means the built-in componentstatuses (which is why it is not ours)."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import k8s_tools
from tests.kube_mock import KubeMock


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    mock = KubeMock().start()
    config = mock.kubeconfig(tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(tmp_path / "cache")}
    yield k8s_tools.ensure()["kubectl"], env
    mock.stop()


def run(kubectl: tuple[Path, dict[str, str]], *args: str,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary, env = kubectl
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=60)


def test_kubectl_finds_stations_by_their_short_name(
    kubectl: tuple[Path, dict[str, str]],
) -> None:
    station = ("apiVersion: csms.dev/v1alpha1\nkind: ChargingStation\n"
               "metadata: {name: cp-kubectl, namespace: default}\nspec: {}\n")
    created = run(kubectl, "create", "-f", "-", stdin=station)
    assert created.returncode == 0, created.stderr
    listed = run(kubectl, "get", "chst", "-o", "name")
    assert listed.returncode == 0 and listed.stdout.split() == [
        "chargingstation.csms.dev/cp-kubectl"], listed.stderr
    assert "could also match" not in listed.stderr
    resources = run(kubectl, "api-resources", "--api-group=csms.dev")
    assert "chst" in resources.stdout and "ChargingStation" in resources.stdout
    builtin = run(kubectl, "api-resources", "--api-group=")
    componentstatuses = [line for line in builtin.stdout.splitlines()
                         if line.startswith("componentstatuses")]
    assert componentstatuses and " cs " in componentstatuses[0]
