"""Shared helpers: a wire that records what a session sends, and in-memory sessions."""

import asyncio
import os
import tempfile
from collections.abc import Callable
from typing import Any

import orjson
import pytest

# Read when kopf, kubernetes and csms_operator are imported, so set before any test imports
# them: the Kubernetes API mock's fixture writes this kubeconfig (tests/kube_mock.py), and the
# operator looks at live state every second instead of every 30.
KUBECONFIG = os.path.join(tempfile.mkdtemp(prefix="csms-tests-"), "kubeconfig")
os.environ["KUBECONFIG"] = KUBECONFIG
os.environ["CSMS_OPERATOR_STATUS_EVERY"] = "1"
os.environ["CSMS_OPERATOR_STATUS_RATE"] = "1000"

from csms.protocol.router import Router, tables  # noqa: E402
from csms.protocol.session import Session  # noqa: E402

# The container image's tests build an image (minutes, root, podman): `make image-test` runs
# them, `make test` does not collect them.
collect_ignore = [] if os.environ.get("CSMS_IMAGE_TEST") else ["image"]


class Wire:
    """The station's end of an in-memory connection: frames the session sent, in order."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self._arrived = asyncio.Condition()

    async def send(self, text: str) -> None:
        async with self._arrived:
            self.frames.append(orjson.loads(text))
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[list[Any]]:
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.frames) >= count)
        return self.frames


SessionFactory = Callable[..., tuple[Session, Wire]]


@pytest.fixture
def make_session() -> SessionFactory:
    def make(version: str, *routers: Router, **kwargs: Any) -> tuple[Session, Wire]:
        wire = Wire()
        session = Session("CP-1", version, tables(list(routers))[version], wire.send, **kwargs)
        return session, wire

    return make
