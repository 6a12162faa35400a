"""The README, run as written (issue 12), so it cannot drift from the code.

Every command in its console blocks is either run here, as written but for a free port in
place of 9000 or 9100 and a temporary folder for the files a user brings (`stations/`,
`my-values.yaml`), or listed in ELSEWHERE with the test that runs its equivalent and why it
cannot run as written. The Python and manifest blocks run, and the messages it quotes are
what csms says.
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from csms.state.credentials import verify_password
from csms.state.registry import RegistryError, load_stations
from tests import k8s_tools
from tests.e2e.conftest import free_port
from tests.e2e.stations import connected
from tests.kube_mock import KubeMock
from tests.polling import wait_until
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = ROOT / ".venv" / "bin"

# Commands not run here as written, with where their equivalent runs.
ELSEWHERE = {
    "make test": "this suite itself, from a fresh clone in CI (.ci/run)",
    "make image-test": "tests/image, run by .ci/run after make test",
    "make lock": "rewrites the locks from PyPI; make setup installs them with --require-hashes",
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 OTEL_TRACES_SAMPLER="
    "parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 OTEL_SERVICE_NAME=csms "
    "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=prod csms serve":
        "tests/e2e/test_tracing.py, with a real OTLP receiver in place of the collector",
    # The evaluation install waits for pods: tests/chart/test_helm_install.py runs the same
    # steps with the pods as processes and nginx as the ingress.
    "helm install csms charts/csms -n csms --create-namespace": "test_helm_install.py",
    "kubectl apply -n csms -f examples/stations/ && kubectl get chst -n csms":
        "test_helm_install.py",
    "helm test csms -n csms": "test_helm_install.py",
}


def console_blocks() -> list[list[str]]:
    """Each console block's commands: `$ ` lines with their `\\` continuations joined and
    the trailing `# comment` dropped."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        commands, current = [], ""
        for line in block.splitlines():
            if current:
                current += " " + line.strip()
            elif line.startswith("$ "):
                current = line[2:].strip()
            else:
                continue
            if current.endswith("\\"):
                current = current[:-1].strip()
                continue
            commands.append(re.sub(r"\s+#.*$", "", current).strip())
            current = ""
        found.append(commands)
    return found


def block(first: str) -> list[str]:
    """The console block whose first command is `first`."""
    (found,) = [b for b in console_blocks() if b and b[0] == first]
    return found


LOCAL = block("make run")
SIMULATE = block(".venv/bin/csms simulate --url ws://127.0.0.1:9000/ocpp --stations 50 "
                 "--version 2.0.1")
CURL = block("curl -s -X POST localhost:9000/api/v1/stations/SIM-0001/calls -H "
             "'content-type: application/json' -d '{\"action\": \"Reset\", \"payload\": "
             "{\"type\": \"Immediate\"}, \"timeout\": 10}'")
OPERATOR = block("csms serve --stations examples/stations/")
PRODUCTION = block("kubectl create namespace csms")
GATEWAY = block("export CSMS_GATEWAY_TOKEN=$(openssl rand -hex 24)")


def test_every_command_is_run_here_or_named_with_its_test() -> None:
    run_here = ["make run", *SIMULATE, *CURL, *OPERATOR, *PRODUCTION, *GATEWAY]
    shown = [c for b in console_blocks() for c in b]
    assert sorted(shown) == sorted(run_here + list(ELSEWHERE))
    assert LOCAL == ["make run", "make test"]


def expected_output(command: str) -> list[str]:
    """The lines the README shows under a command, up to the next blank line or command."""
    at = README.index(f"$ {command.split(' -H ')[0]}")  # a continued command: its first line
    lines = README[at:].split("\n")[1:]
    shown = []
    for line in lines:
        if not line.strip() or line.startswith(("$ ", "```")):
            break
        if not line.startswith(" "):  # not a continuation of the command
            shown.append(line)
    return shown


class Process:
    """A README command running in its own process group, its output collected in a file."""

    def __init__(self, command: str, folder: Path, env: dict[str, str] | None = None) -> None:
        self.log = folder / f"{free_port()}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **(env or {})})

    def output(self) -> str:
        return self.log.read_text()

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as in a terminal: SIGINT to the whole group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait(10)


def test_make_run_the_simulator_and_a_command_to_a_station(
    tmp_path: Path, processes: list[Process],
) -> None:
    port = str(free_port())
    server = Process(f"make run PORT={port} DATA_DIR={tmp_path / 'data'}", tmp_path)
    processes.append(server)
    printed = [line.replace("9000", port) for line in expected_output("make run")]
    wait_until(lambda: all(line in server.output() for line in printed), 60,
               f"make run to print {printed}")

    (simulate,) = SIMULATE
    fleet = Process(simulate.replace("9000", port), tmp_path)
    processes.append(fleet)

    def booted_at() -> str | None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/stations/SIM-0001", timeout=5)
        except httpx.TransportError:  # printed its lines, not listening yet
            return None
        return answer.json()["bootedAt"] if answer.status_code == 200 else None

    first_boot = wait_until(booted_at, 30, "SIM-0001 to boot")
    (curl,) = CURL
    sent = subprocess.run(["bash", "-c", curl.replace("9000", port)], capture_output=True,
                          text=True, timeout=30)
    assert sent.stdout.splitlines() == expected_output(curl), sent.stderr
    # The station reboots: it closes, reconnects and boots again.
    wait_until(lambda: booted_at() not in (None, first_boot), 30, "SIM-0001 to boot again")
    assert fleet.interrupt() == 0  # Ctrl-C: the summary, and a normal exit
    assert '"reboots": 1' in fleet.output() and "SIM-0001" not in fleet.output()
    server.interrupt()
    assert "Traceback" not in server.output()
    assert (tmp_path / "data" / "csms.sqlite3").exists()  # its ledger, durable


def test_the_example_app_and_the_laptop_registry_serve(
    tmp_path: Path, processes: list[Process],
) -> None:
    line = re.search(r"`(\.venv/bin/uvicorn examples\.app:app --port 9100)`", README)
    assert line is not None
    port = str(free_port())
    app = Process(line.group(1).replace("9100", port), tmp_path)
    processes.append(app)
    laptop = Process(OPERATOR[0], tmp_path, {"CSMS_PORT": str(free_port()),
                                             "PATH": f"{BIN}:{os.environ['PATH']}"})
    processes.append(laptop)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 30, "examples.app under uvicorn")
    wait_until(lambda: "4 registered stations" in laptop.output(), 30, "csms serve")
    assert "no stations are registered" not in laptop.output()


def test_the_python_block_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict[str, object] = {"FLEET_CARDS": {"FLEET-001"}}
    exec(compile(code, "README.md", "exec"), namespace)
    assert callable(namespace["app"])  # an ASGI app, its router registered


def test_the_annotated_manifest_is_a_valid_station(tmp_path: Path) -> None:
    (manifest,) = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S)
                   if "kind: ChargingStation" in b]
    (tmp_path / "stations.yaml").write_text(manifest)
    (tmp_path / "secrets.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata: {name: cs-0002-auth}
        stringData: {password: a-password-of-24-chars}
        """))
    (entry,) = load_stations(tmp_path)
    assert entry.station_id == "cs-0002" and entry.heartbeat_interval == 120
    assert set(entry.versions) == {"2.0.1", "2.1"} and entry.id_tokens == {"TAG-0001"}
    assert entry.security_profile == 1 and entry.password_hash is not None
    assert verify_password("a-password-of-24-chars", entry.password_hash)
    assert dict(entry.configuration) == {"OCPPCommCtrlr.HeartbeatInterval": "120"}


def quoted(prefix: str) -> str:
    """The message the README quotes in backticks that starts with `prefix`."""
    match = re.search(rf"`({re.escape(prefix)}[^`]*)`", README)
    assert match is not None, prefix
    return " ".join(match.group(1).split())  # as one line, wrapped or not


def test_the_quoted_messages_are_what_csms_says(tmp_path: Path) -> None:
    bad = subprocess.run([str(BIN / "csms"), "serve"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "CSMS_CALL_TIMEOUT": "-1"})
    assert bad.returncode == 2
    assert quoted("csms: CSMS_CALL_TIMEOUT:") in bad.stderr

    (tmp_path / "stations.yaml").write_text(textwrap.dedent("""\
        apiVersion: csms.dev/v1alpha1
        kind: ChargingStation
        metadata: {name: cp-0001}
        spec: {}
        ---
        apiVersion: csms.dev/v1alpha1
        kind: ChargingStation
        metadata: {name: cs-0002}
        spec: {heartbeatInterval: 0}
        """))
    with pytest.raises(RegistryError) as reload_error:
        load_stations(tmp_path / "stations.yaml")
    assert quoted("stations.yaml document 2") in str(reload_error.value)

    (tmp_path / "stations.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: csms.dev/v1alpha1
        kind: ChargingStation
        metadata: {{name: cp-0001}}
        spec: {{securityProfile: 1, password: {"x" * 41}}}
        """))
    with pytest.raises(RegistryError) as password_error:
        load_stations(tmp_path / "stations.yaml")
    assert quoted("spec.password: must be") in str(password_error.value)
    assert "x" * 41 not in str(password_error.value)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty cluster (the API emulator, no CRDs), and the environment helm and kubectl
    find it and themselves in."""
    tools = k8s_tools.ensure()
    mock = KubeMock(crds=()).start()
    config = mock.kubeconfig(tmp_path / "kubeconfig")
    path = os.pathsep.join([str(tools["kubectl"].parent), str(BIN), os.environ["PATH"]])
    yield {**os.environ, "KUBECONFIG": str(config), "PATH": path,
           "KUBECACHEDIR": str(tmp_path / "kube"),
           "HELM_CACHE_HOME": str(tmp_path / "helm/cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm/config"),
           "HELM_DATA_HOME": str(tmp_path / "helm/data")}
    mock.stop()


def sh(command: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_operator_commands_register_the_example_stations(kube: dict[str, str]) -> None:
    _, crd, stations, listing = OPERATOR
    sh(crd, kube)
    sh(stations, kube)
    table = sh(listing, kube).splitlines()
    shown = expected_output(listing)
    assert table[0].split() == shown[0].split()  # the columns, in order
    names = {row.split()[0] for row in table[1:]}
    assert {row.split()[0] for row in shown[1:]} <= names
    assert names == {d["metadata"]["name"] for d in yaml.safe_load_all(
        (ROOT / "examples/stations/stations.yaml").read_text())}


def test_the_production_install_upgrade_and_uninstall(
    kube: dict[str, str], tmp_path: Path,
) -> None:
    # What the user brings: their manifests in stations/ and their values in my-values.yaml.
    work = tmp_path / "work"
    work.mkdir()
    (work / "charts").symlink_to(ROOT / "charts")
    shutil.copytree(ROOT / "examples/stations", work / "stations")
    values = yaml.safe_load((ROOT / "charts/csms/ci/production-values.yaml").read_text())
    values["central"]["resources"]["limits"]["memory"] = "3Gi"
    (work / "my-values.yaml").write_text(yaml.safe_dump(values))
    for command in PRODUCTION:
        sh(command, kube, work)
        if command.startswith("helm install"):
            host = sh("kubectl -n csms get ingress -o jsonpath='{.items[*].spec.rules[*].host}'",
                      kube, work)
            assert host == "ocpp.example.com"
            token = sh("kubectl -n csms get secret csms-api-tokens "
                       "-o jsonpath='{.data.tokens}'", kube, work)
            assert len(token) > 40  # openssl rand -hex 24, base64-encoded
        if command.startswith("helm upgrade"):
            limit = sh("kubectl -n csms get deployment csms-central -o jsonpath="
                       "'{.spec.template.spec.containers[0].resources.limits.memory}'",
                       kube, work)
            assert limit == "3Gi"
    # The CRD (crds/) and the stations stay.
    assert sh("kubectl get crd chargingstations.csms.dev -o name", kube, work).strip()
    left = sh("kubectl -n csms get chst -o name", kube, work).split()
    assert len(left) == 4
    assert not sh("kubectl -n csms get deployments -o name", kube, work).strip()



def test_the_serverless_commands_put_a_gateway_before_a_backend(
    tmp_path: Path, processes: list[Process],
) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis").start()
    try:
        backend, gateway = free_port(), free_port()
        script = "\n".join(GATEWAY).replace("redis://127.0.0.1:6379/0", store.url).replace(
            "9000", str(backend)).replace("9100", str(gateway))
        both = Process(script, tmp_path, {"PATH": f"{BIN}:{os.environ['PATH']}"})
        processes.append(both)

        def up(port: int, path: str) -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(lambda: up(backend, "/readyz") and up(gateway, "/healthz"), 30,
                   f"the backend and the gateway: {both.output()}")
        boot, view = asyncio.run(boot_through(f"ws://127.0.0.1:{gateway}/ocpp", "cp-0001",
                                              f"http://127.0.0.1:{backend}"))
        assert boot.status == "Accepted" and boot.interval == 60
        assert view["connected"] is True and view["pod"] == f"http://{socket.gethostname()}:{gateway}"
        both.interrupt()
        assert "Traceback" not in both.output()
        assert "CSMS_GATEWAY_TOKEN is not set" not in both.output()
    finally:
        store.stop()


async def boot_through(url: str, station: str, api: str) -> tuple[Any, dict[str, Any]]:
    """Boot the station through the gateway; its view on the backend while it is there."""
    from ocpp.v16 import call as call16

    async with connected(url, station, "1.6") as cp, httpx.AsyncClient(base_url=api) as c:
        boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme",
                                                     charge_point_model="One"))
        return boot, (await c.get(f"/api/v1/stations/{station}")).json()
