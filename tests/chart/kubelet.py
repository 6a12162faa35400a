"""A small test kubelet: runs a pod's container as a local process.

What a kubelet would do, on one machine: the container's command and args (or the image's
entrypoint), its environment resolved the Kubernetes way (`envFrom` ConfigMaps,
`configMapKeyRef`, `secretKeyRef`, `fieldRef: metadata.name`, and `$(VAR)` references to
variables defined before), its Secret volumes written to a folder of its own, its readiness
probe (HTTP or TCP), and on stop its preStop hook, SIGTERM and the grace period.

A pod has its own network namespace, a process does not: each container port gets a free
loopback port, and the addresses the pod would use are rewritten where they appear in its
env and args: container ports, `0.0.0.0`, Service names (to the ports the caller gives,
tests/chart/cluster.py's kube-proxy) and mount paths (to the pod's folder).
"""

import base64
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.nginx_server import free_port
from tests.polling import wait_until

Manifest = dict[str, Any]
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# What an image runs without a command: the pod's arguments follow it.
Entrypoint = Callable[["Pod"], list[str]]


def csms_entrypoint(pod: "Pod") -> list[str]:
    return [sys.executable, "-m", "csms"]


def redis_entrypoint(pod: "Pod") -> list[str]:
    """The redis image: redis-server on the pod's port for 6379, its data in the pod."""
    binary = "redis-server"
    return [binary, "--bind", "127.0.0.1", "--port", str(pod.ports[6379]),
            "--dir", str(pod.folder)]


ENTRYPOINTS: dict[str, Entrypoint] = {"csms": csms_entrypoint, "redis": redis_entrypoint}


class Objects:
    """ConfigMaps and Secrets by name, where env and volumes come from."""

    def __init__(self, docs: list[Manifest]) -> None:
        self._by = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    def get(self, kind: str, name: str) -> Manifest:
        return self._by[(kind, name)]

    def secret(self, name: str, key: str) -> str:
        return base64.b64decode(self.get("Secret", name)["data"][key]).decode()

    def config(self, name: str, key: str) -> str:
        return str(self.get("ConfigMap", name)["data"][key])


class Pod:
    def __init__(self, name: str, spec: Manifest, objects: Objects, folder: Path,
                 services: dict[str, str], env: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None,
                 entrypoints: dict[str, Entrypoint] = ENTRYPOINTS) -> None:
        """`services` maps Service addresses (`name:port`) to `127.0.0.1:port`; `env` is
        what the node adds (a kubeconfig for the service account, PATH); `labels` are the
        pod's, which Services select."""
        self.name = name
        self.labels = labels or {}
        self.spec = spec
        (self.container,) = spec["containers"]
        self.folder = folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = {p["containerPort"]: free_port() for p in self.container.get("ports", [])}
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.objects = objects
        # Longest first: "rel-csms-redis:6379" before "rel-csms:6379" could match inside it.
        self.services = dict(sorted(services.items(), key=lambda kv: -len(kv[0])))
        self.node_env = env or {}
        image = self.container.get("image", "")
        self.entrypoint = next((e for prefix, e in entrypoints.items()
                                if image.rsplit("/", 1)[-1].startswith(prefix)), None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "log"

    def port(self, name_or_number: str | int) -> int:
        """The loopback port of a container port, by its name or number."""
        number = next((p["containerPort"] for p in self.container.get("ports", [])
                       if p.get("name") == name_or_number), name_or_number)
        return self.ports[int(number)]

    def _path(self, mount_path: str) -> str:
        return str(self.folder / "root" / mount_path.lstrip("/"))

    def _mount(self) -> None:
        for mount in self.container.get("volumeMounts", []):
            volume = self.volumes[mount["name"]]
            target = Path(self._path(mount["mountPath"]))
            target.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                secret = self.objects.get("Secret", volume["secret"]["secretName"])
                for key, value in secret["data"].items():
                    (target / key).write_bytes(base64.b64decode(value))

    def _rewrite(self, value: str) -> str:
        """Mount paths, Service names and container ports, as the process sees them."""
        for mount in self.container.get("volumeMounts", []):
            value = value.replace(mount["mountPath"], self._path(mount["mountPath"]))
        for address, target in self.services.items():
            value = value.replace(address, target)
        value = value.replace("0.0.0.0", "127.0.0.1")
        for container_port, local in self.ports.items():
            if value == str(container_port):
                return str(local)
            value = re.sub(rf"(127\.0\.0\.1|localhost):{container_port}\b",
                           rf"\g<1>:{local}", value)
        return value

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            data = self.objects.get("ConfigMap", source["configMapRef"]["name"])["data"]
            env.update({k: str(v) for k, v in data.items()})
        for item in self.container.get("env", []):
            if "value" in item:
                value = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)),
                                       str(item["value"]))
            else:
                ref = item["valueFrom"]
                if "secretKeyRef" in ref:
                    value = self.objects.secret(ref["secretKeyRef"]["name"],
                                                ref["secretKeyRef"]["key"])
                elif "configMapKeyRef" in ref:
                    value = self.objects.config(ref["configMapKeyRef"]["name"],
                                                ref["configMapKeyRef"]["key"])
                elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                    value = self.name
                else:
                    raise NotImplementedError(f"env source {ref}")
            env[item["name"]] = value
        return {k: self._rewrite(v) for k, v in env.items()}

    def argv(self, env: dict[str, str]) -> list[str]:
        def expand(arg: str) -> str:
            return self._rewrite(_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), arg))

        args = [expand(a) for a in self.container.get("args", [])]
        if "command" in self.container:
            return [expand(a) for a in self.container["command"]] + args
        # The image's entrypoint is this machine's program: nothing in it to rewrite.
        assert self.entrypoint is not None, f"no entrypoint for {self.container['image']}"
        return self.entrypoint(self) + args

    def start(self) -> "Pod":
        self._mount()
        env = self.environment()
        argv = self.argv(env)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
        with self.log.open("ab") as log:  # a restart appends, as `kubectl logs -p` keeps
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PATH": path, **self.node_env,
                                              **env})
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def probe(self) -> bool:
        """One readiness check: the probe the container declares, or a running process."""
        if not self.running:
            return False
        probe = self.container.get("readinessProbe", {})
        try:
            if "httpGet" in probe:
                url = (f"http://127.0.0.1:{self.port(probe['httpGet']['port'])}"
                       f"{probe['httpGet'].get('path', '/')}")
                return httpx.get(url, timeout=1).status_code < 400
            if "tcpSocket" in probe:
                socket.create_connection(("127.0.0.1", self.port(probe["tcpSocket"]["port"])),
                                         1).close()
        except (httpx.HTTPError, OSError):
            return False
        return True

    def ready(self, timeout: float = 30) -> None:
        def answers() -> bool:
            assert self.running, self.log.read_text()
            return self.probe()

        wait_until(answers, timeout, f"{self.name} ready")

    def stop(self) -> None:
        """The kubelet's termination: the preStop hook, SIGTERM, then SIGKILL after the
        grace period."""
        if not self.running:
            return
        pre_stop = self.container.get("lifecycle", {}).get("preStop", {})
        if "exec" in pre_stop:
            subprocess.run(pre_stop["exec"]["command"], timeout=120, check=False)
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(self.spec.get("terminationGracePeriodSeconds", 30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
