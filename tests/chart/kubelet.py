"""A small test kubelet: runs a rendered Deployment's container as a local process.

What a kubelet would do, on one machine: the container's command and args (the image's
entrypoint is `csms`), its environment resolved the Kubernetes way (`envFrom` ConfigMaps,
`configMapKeyRef`, `secretKeyRef`, `fieldRef: metadata.name`, and `$(VAR)` references to
variables defined before), its Secret volumes written to a folder of its own, and its
readiness probe polled. A pod has its own network namespace, a process does not: ports and
Service names are mapped to loopback ports the caller chooses, and mount paths to the folder.
"""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.polling import wait_until

Manifest = dict[str, Any]
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class Objects:
    """The rendered objects, by kind and name."""

    def __init__(self, docs: list[Manifest]) -> None:
        self._by = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    def get(self, kind: str, name: str) -> Manifest:
        return self._by[(kind, name)]

    def secret(self, name: str, key: str) -> str:
        return base64.b64decode(self.get("Secret", name)["data"][key]).decode()

    def config(self, name: str, key: str) -> str:
        return str(self.get("ConfigMap", name)["data"][key])


class Pod:
    def __init__(self, objects: Objects, deployment: str, name: str, folder: Path,
                 ports: dict[int, int], services: dict[str, str],
                 command: list[str] | None = None) -> None:
        """`ports` maps container ports to loopback ports; `services` Service host names
        (with their port) to `127.0.0.1:port`; `command` stands for the image's entrypoint
        (csms's image: `csms`)."""
        self.name = name
        self.command = command or [sys.executable, "-m", "csms"]
        self.folder = folder
        self.ports = ports
        spec = objects.get("Deployment", deployment)["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.objects = objects
        self.services = services
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / f"{name}.log"

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
        """Mount paths, container ports and Service names, as the process sees them."""
        for mount in self.container.get("volumeMounts", []):
            value = value.replace(mount["mountPath"], self._path(mount["mountPath"]))
        for host, target in self.services.items():
            value = value.replace(host, target)
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
        env = {k: self._rewrite(v) for k, v in env.items()}
        for container_port, local in self.ports.items():
            for key, value in env.items():
                if value == str(container_port):
                    env[key] = str(local)
        return env

    def start(self) -> "Pod":
        self._mount()
        env = self.environment()
        args = [_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), a)
                for a in self.container.get("args", [])]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([*self.command, *args], stdout=log,
                                         stderr=subprocess.STDOUT, env={**os.environ, **env})
        return self

    def ready(self, timeout: float = 30) -> None:
        probe = self.container["readinessProbe"]["httpGet"]
        port = next(p["containerPort"] for p in self.container["ports"]
                    if p["name"] == probe["port"])
        url = f"http://127.0.0.1:{self.ports[port]}{probe['path']}"

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout, f"{self.name} ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
