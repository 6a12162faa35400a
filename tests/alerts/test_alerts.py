"""The chart's alerts (templates/prometheusrule.yaml) checked by the real promtool: the rules
are valid, each alert fires where it should and stays quiet where it should not
(alerts.test.yaml), and each has a severity, a summary, a description and a runbook that
exists in docs/runbooks.md.

promtool compares annotations exactly when a test names an alert; the unit tests compare
labels and timing, so the rules they load carry no annotations (checked here instead)."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import k8s_tools
from tests.chart.test_chart import CHART, MONITORING, run_helm

ROOT = CHART.parent.parent
RUNBOOKS = ROOT / "docs" / "runbooks.md"
TESTS = Path(__file__).parent / "alerts.test.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "make test installs it (.ci/system-deps.sh: prometheus)"
    return found


def render(*args: str) -> list[dict[str, Any]]:
    """Release "csms" in namespace "csms", as alerts.test.yaml's series are labelled."""
    done = run_helm(k8s_tools.ensure()["helm"], "template", "csms", str(CHART), "--namespace",
                    "csms", "--set", "redis.bundled.enabled=true", *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def rules() -> list[dict[str, Any]]:
    docs = render("--api-versions", MONITORING, "--set", "prometheusRule.enabled=true")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    return rule["spec"]["groups"]  # type: ignore[no-any-return]


def alerts() -> list[dict[str, Any]]:
    return [r for group in rules() for r in group["rules"]]


def test_the_rules_are_valid_for_promtool(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rules()}))
    checked = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_each_alert_fires_where_it_should_and_not_elsewhere(tmp_path: Path) -> None:
    groups = rules()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    tested = subprocess.run([promtool(), "test", "rules", str(tmp_path / TESTS.name)],
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a case where it fires and one where it does not.
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), name
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), name


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_each_alert_says_what_it_means_and_links_its_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in ("critical", "warning", "info")
    notes = alert["annotations"]
    assert notes["summary"] and notes["description"]
    anchor = notes["runbook_url"].rsplit("#", 1)[1]
    assert anchor == alert["alert"].lower()
    headings = re.findall(r"^## (\S+)", RUNBOOKS.read_text(), flags=re.M)
    assert alert["alert"] in headings, f"docs/runbooks.md has no section {alert['alert']}"


def test_the_rule_is_gated_on_its_crd_and_off_by_default() -> None:
    assert not [d for d in render("--api-versions", MONITORING)
                if d["kind"] == "PrometheusRule"]
    assert not [d for d in render("--set", "prometheusRule.enabled=true")
                if d["kind"] == "PrometheusRule"]  # no monitoring.coreos.com/v1 API
