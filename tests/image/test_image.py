"""The container image, built and run with podman as a cluster would run it.

No container registry is reachable here, so the `FROM` image is made from Debian's own
packages (`debootstrap --variant=minbase bookworm`, trimmed like the slim image) and
imported under the name the Dockerfile names. `make image-test` runs this module (it is
left out of `make test`: see tests/conftest.py); `.ci/run` runs both.
"""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from ocpp.v201 import call as call201

from tests.e2e.conftest import free_port
from tests.e2e.stations import connected
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/csms:test"
RUN = ["podman", "--runtime", "runc", "run", "--ulimit", "nofile=1024:1024", "--ulimit",
       "nproc=1024:1024"]
SIZE_LIMIT_MB = 150  # the aim


def podman(*args: str, timeout: float = 600, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def make_base_image() -> None:
    """A debian:bookworm-slim-like image from Debian's packages, once per machine."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root),
                        "http://deb.debian.org/debian"], check=True, capture_output=True,
                       timeout=900)
        for trimmed in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                        "var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (root / trimmed).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        with tar:  # closes its stdout too
            imported = subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout,
                                      capture_output=True, text=True, timeout=300)
        assert imported.returncode == 0, imported.stderr


@pytest.fixture(scope="module")
def image() -> str:
    make_base_image()
    args = ["build", "--isolation", "chroot", "--network", "host", "-t", IMAGE]
    # The host's CA bundle, for pip inside the build: it trusts what the host trusts (a
    # TLS-inspecting proxy's CA included, where there is one).
    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(ca):
        args += ["--volume", f"{ca}:/etc/ssl/certs/host-ca.crt:ro",
                 "--build-arg", "PIP_CERT=/etc/ssl/certs/host-ca.crt"]
    podman(*args, str(ROOT), timeout=1200)
    return IMAGE


def test_the_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_a_numeric_user_with_labels_and_no_build_tools(image: str) -> None:
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["csms"] and config["Cmd"] == ["serve"]
    labels = config["Labels"]
    for label in ("source", "version", "licenses"):
        assert labels[f"org.opencontainers.image.{label}"], label
    # No compiler, pip, package manager or perl; the shell and sleep the chart's preStop
    # hook and helm test run are there.
    tools = subprocess.run([*RUN, "--rm", "--entrypoint", "sh", image, "-c",
                            "for t in gcc cc pip pip3 apt-get dpkg perl; do command -v $t; "
                            "done; sleep 0 && echo shell-and-sleep"],
                           capture_output=True, text=True, timeout=60)
    assert tools.stdout.split() == ["shell-and-sleep"], tools.stdout + tools.stderr
    # The user, the CA bundle Python's ssl loads, and the Debian records scanners read.
    probe = ("import os, ssl; print(os.getuid(), os.getgid(), "
             "ssl.create_default_context().cert_store_stats()['x509_ca'], "
             "sorted(os.listdir('/var/lib/dpkg/status.d')))")
    checked = subprocess.run([*RUN, "--rm", "--entrypoint", "python3", image, "-c", probe],
                             capture_output=True, text=True, timeout=60)
    uid, gid, authorities, records = checked.stdout.split(" ", 3)
    assert (uid, gid) == ("10001", "10001") and int(authorities) > 100, checked.stderr
    assert all(p in records for p in ("python3.11-minimal", "libpython3.11-stdlib", "libc6",
                                      "libssl3", "dash"))
    size_mb = info["Size"] / 1e6
    print(f"\nimage size: {size_mb:.0f} MB", file=sys.__stderr__)
    assert size_mb < SIZE_LIMIT_MB


def test_one_image_runs_the_operator_and_the_simulator(image: str) -> None:
    simulate = subprocess.run([*RUN, "--rm", image, "simulate", "--help"], capture_output=True,
                              text=True, timeout=60)
    assert simulate.returncode == 0 and "--stations" in simulate.stdout
    operator = subprocess.run([*RUN, "--rm", "-e", "CSMS_OPERATOR_STATUS_EVERY=0", image,
                               "operator"], capture_output=True, text=True, timeout=60)
    # The operator's extra is in the image: it gets as far as checking its settings.
    assert operator.returncode == 2
    assert "CSMS_OPERATOR_STATUS_EVERY: expected a number above 0" in operator.stderr


@contextlib.contextmanager
def served(image: str, port: int, internal: int) -> Iterator[str]:
    name = f"csms-image-test-{port}"
    podman(*RUN[1:], "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
           "--network", "host", image, "serve", "--host", "127.0.0.1", "--port", str(port),
           "--internal-port", str(internal), "--accept-unknown", "--drain-spread", "1")
    try:
        yield name
    finally:
        podman("rm", "-f", name, check=False)


async def test_read_only_it_serves_a_station_and_drains_on_sigterm(image: str) -> None:
    port, internal = free_port(), free_port()
    with served(image, port, internal) as name:
        def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{internal}/readyz").status_code == 200
            return False

        wait_until(ready, 60, "the container to be ready")
        async with connected(f"ws://127.0.0.1:{port}/ocpp", "IMG-1", "2.0.1") as station:
            boot = await station.call(call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            stopping = asyncio.create_task(asyncio.to_thread(podman, "stop", "-t", "30", name))
            await asyncio.wait_for(station._connection.wait_closed(), 30)
            assert station._connection.close_code == 1012
            await stopping
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] in (0, 143), state  # a clean shutdown after the drain
        logs = podman("logs", name).stderr + podman("logs", name).stdout
        assert "IMG-1 disconnected (draining)" in logs
        assert "Traceback" not in logs and "Read-only file system" not in logs
    with pytest.raises((OSError, websockets.InvalidHandshake)):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/IMG-1",
                                      open_timeout=2):
            pass
