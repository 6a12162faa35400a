"""The fuzzers' oracle can fail, and a short coverage-guided run of the core finds nothing.

`make fuzz` runs the same target for as long as asked (FUZZ_SECONDS)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzzing.oracle import Violation, check, expected_id

SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("version", "frame", "sent"), [
    ("1.6", '[2, "a", "Heartbeat", {}]', []),  # no answer
    ("1.6", '[2, "a", "Heartbeat", {}]', ['[4, "a", "GenericError", "", {}]'] * 2),  # two
    ("1.6", '[2, "a", "Heartbeat", {}]', ['[4, "b", "GenericError", "", {}]']),  # wrong id
    ("1.6", "nonsense", ['[4, "-1", "RpcFrameworkError", "", {}]']),  # a 2.x code in 1.6
    ("2.0.1", "nonsense", ['[4, "-1", "FormationViolation", "", {}]']),  # a 1.6 code in 2.x
    ("2.0.1", '[2, "a", "Heartbeat", {}]', ['[4, "a", "InternalError", "", {}]']),
    ("2.0.1", '[2, "a", "Heartbeat", {}]', ['[3, "a", {"currentTime": "soon"}]']),  # schema
    ("2.1", '[6, "s", "Heartbeat", {}]', ['[4, "s", "NotSupported", "", {}]']),  # SEND answered
    ("1.6", '[3, "x", {}]', ['[4, "x", "GenericError", "", {}]']),  # a reply answered
    ("1.6", '[2, "a", "Heartbeat", {}]', ['[4, "a", "GenericError", "x" * 300, {}]'
                                          .replace('"x" * 300', '"' + "x" * 300 + '"')]),
])
def test_the_oracle_catches_each_broken_promise(version: str, frame: str,
                                               sent: list[str]) -> None:
    with pytest.raises(Violation):
        check(version, frame, sent)


def test_the_oracle_passes_what_the_specifications_ask() -> None:
    check("1.6", '[2, "a", "Heartbeat", {}]',
          ['[2, "ours", "Reset", {"type": "Soft"}]', '[3, "a", {"currentTime": '
           '"2026-01-01T00:00:00Z"}]'])
    check("2.1", '[6, "s", "Heartbeat", {}]', [])
    check("2.0.1", '[6, "s", "Heartbeat", {}]', ['[4, "s", "MessageTypeNotSupported", "", {}]'])
    assert expected_id("1.6", b'[true, "m", "x", {}]') == "m"
    assert expected_id("1.6", '[2, "' + "x" * 37 + '", "x", {}]') == "-1"


@pytest.mark.timeout(SECONDS + 120)
def test_a_short_coverage_guided_run_breaks_no_invariant(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzzing.session_target", f"-max_total_time={SECONDS}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(tmp_path / "corpus")],
        cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 100)
    tail = done.stderr[-4000:]
    assert done.returncode == 0, tail
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), tail
    runs = int(re.search(r"Done (\d+) runs", done.stderr).group(1))  # type: ignore[union-attr]
    coverage = re.findall(r"cov: (\d+)", done.stderr)[-1]
    assert runs > 10_000, tail
    print(f"\nfuzzing the core: {runs:,} inputs in {SECONDS} s, {coverage} edges covered, "
          f"corpus {len(list((tmp_path / 'corpus').iterdir()))} inputs", file=sys.__stderr__)
