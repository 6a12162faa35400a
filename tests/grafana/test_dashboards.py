"""The Grafana dashboards: the committed JSON is what dashboards/build.py renders, each
follows the rules of Grafana's dashboard-linter that apply to it, every query is valid
PromQL for the real promtool, and the chart ships them as the Grafana sidecar expects."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import BOARDS, OUT, render
from tests import k8s_tools
from tests.chart.test_chart import CHART, run_helm

DASHBOARDS = {name: json.loads(text) for name, text in render().items()}


def test_the_committed_json_is_what_the_code_renders() -> None:
    committed = {p.name: p.read_text() for p in OUT.glob("*.json")}
    assert committed == render(), "stale: run `make dashboards` and commit the JSON"


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_dashboard_linter_rules(name: str) -> None:
    board = DASHBOARDS[name]
    assert board["uid"] == name.removesuffix(".json") and board["title"].startswith("csms / ")
    assert "csms" in board["tags"] and board["description"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    # template-datasource-rule: a Prometheus data source variable...
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # ...and job (and pod, in place of instance) variables that use it, reloaded with time.
    scoped = ["namespace", "job"] + (["pod"] if "pod" in variables else [])
    for key in scoped:
        assert variables[key]["datasource"]["uid"] == "${datasource}", key
        assert variables[key]["refresh"] == 2, key  # template-on-time-change-reload-rule
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        where = f"{name}: {panel['title']}"
        assert panel["datasource"]["uid"] == "${datasource}", where  # panel-datasource-rule
        assert panel["title"] and panel["description"], where  # panel-title-description
        assert panel["fieldConfig"]["defaults"]["unit"], where  # panel-units-rule
        assert panel["targets"], where  # panel-no-targets-rule
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}", where
            assert target["legendFormat"], where
            # target-job-rule and target-instance-rule (pod), and the namespace.
            for key in scoped:
                assert re.search(rf'{key}=~?"\${key}"', expr), (where, key, expr)
            # target-rate-interval-rule: every range is $__rate_interval.
            ranges = re.findall(r"\[([^\]]+)\]", expr)
            assert ranges == ["$__rate_interval"] * len(ranges), (where, expr)


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """As recording rules, with the variables filled in, for promtool's parser."""
    promtool = shutil.which("promtool")
    assert promtool, "make test installs it (.ci/system-deps.sh: prometheus)"
    rules = []
    for name, board in DASHBOARDS.items():
        for panel in panels(board):
            for n, target in enumerate(panel["targets"]):
                expr = (target["expr"].replace("$__rate_interval", "1m")
                        .replace("$namespace", "csms").replace("$job", "csms-internal")
                        .replace("$pod", ".*"))
                rules.append({"record": f"csms:check:{name[:-5].replace('-', '_')}:"
                              f"{panel['id']}_{n}", "expr": expr})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules)} rules found" in checked.stdout


def test_the_chart_ships_them_for_the_grafana_sidecar_and_grafana_operator() -> None:
    helm = k8s_tools.ensure()["helm"]

    def rendered(*args: str) -> list[dict[str, Any]]:
        done = run_helm(helm, "template", "rel", str(CHART), *args)
        assert done.returncode == 0, done.stderr
        return [d for d in yaml.safe_load_all(done.stdout) if d]

    assert not [d for d in rendered() if d["metadata"]["name"].startswith("rel-csms-dashboard")]
    docs = rendered("--set", "dashboards.enabled=true", "--set",
                    "dashboards.grafanaOperator.enabled=true", "--api-versions",
                    "grafana.integreatly.org/v1beta1")
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"
            and d["metadata"]["name"].startswith("rel-csms-dashboard-")}
    assert len(maps) == len(BOARDS)
    for board in BOARDS:
        short = board.uid.removeprefix("csms-")
        config = maps[f"rel-csms-dashboard-{short}"]
        assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config["metadata"]["annotations"]["grafana_folder"] == "csms"
        assert json.loads(config["data"][f"{board.uid}.json"]) == DASHBOARDS[f"{board.uid}.json"]
    operated = [d for d in docs if d["kind"] == "GrafanaDashboard"]
    assert len(operated) == len(BOARDS)
    assert all(json.loads(d["spec"]["json"])["uid"].startswith("csms-") for d in operated)
    without_crd = rendered("--set", "dashboards.enabled=true", "--set",
                           "dashboards.grafanaOperator.enabled=true")
    assert not [d for d in without_crd if d["kind"] == "GrafanaDashboard"]
