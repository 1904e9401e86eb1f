"""The dashboard and alert-rule checker: the shipped files pass, and each kind of broken dashboard
or rule is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hostmeter_tools import REPO, dashboards

DASHBOARD = REPO / "packaging/grafana/hostmeter.json"
RULES = REPO / "packaging/prometheus/hostmeter-rules.yml"
SOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def good_dashboard() -> dict:
    return {
        "title": "t", "uid": "u", "schemaVersion": 39,
        "templating": {"list": [
            {"name": "DS_PROMETHEUS", "type": "datasource", "query": "prometheus"},
            {"name": "job", "type": "query", "datasource": SOURCE, "query": "label_values(hostmeter_build_info, job)"},
            {"name": "instance", "type": "custom"},
            {"name": "instance_id", "type": "query", "datasource": SOURCE,
             "query": {"query": "label_values(hostmeter_instance_cpu_percent{job=~\"$job\"}, instance_id)"}},
        ]},
        "panels": [
            {"id": 1, "type": "row", "title": "Row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
            {"id": 2, "type": "timeseries", "title": "Samples", "datasource": SOURCE,
             "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
             "targets": [{"refId": "A", "datasource": SOURCE,
                          "expr": "rate(hostmeter_samples_total{job=~\"$job\"}[$__rate_interval])"}]},
            {"id": 3, "type": "timeseries", "title": "Latency", "datasource": SOURCE,
             "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8},
             "targets": [{"refId": "A", "datasource": SOURCE, "expr":
                          "histogram_quantile(0.99, sum by (le) (rate(hostmeter_ship_duration_seconds_bucket[5m])))"
                          }]},
        ],
    }


def problems_of(tmp_path: Path, dashboard: dict) -> list[str]:
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(dashboard))
    problems: list[str] = []
    dashboards.check_dashboard(str(path), problems)
    return problems


def test_the_shipped_dashboard_and_rules_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    promtool = tmp_path / "queries.yml"
    assert dashboards.main(["--dashboard", str(DASHBOARD), "--rules", str(RULES), "--promtool-rules",
                            str(promtool)]) == 0
    assert "all metric names known" in capsys.readouterr().out
    text = promtool.read_text()
    assert text.startswith("groups:\n  - name: dashboard-queries\n") and "$" not in text


def test_a_good_dashboard_has_no_problems(tmp_path: Path) -> None:
    assert problems_of(tmp_path, good_dashboard()) == []


def test_an_unknown_metric_is_named(tmp_path: Path) -> None:
    dashboard = good_dashboard()
    dashboard["panels"][1]["targets"][0]["expr"] = "rate(hostmeter_samples_totl[5m])"
    assert problems_of(tmp_path, dashboard) == [
        f"{tmp_path / 'dashboard.json'}: panel 'Samples' A: unknown metric(s) ['hostmeter_samples_totl'] in "
        "'rate(hostmeter_samples_totl[5m])'"]


@pytest.mark.parametrize(("breakage", "expected"), [
    (lambda d: d["panels"][2]["gridPos"].update(x=6), "panel 'Latency' overlaps 'Samples'"),
    (lambda d: d["panels"][2]["gridPos"].update(w=13), "panel 'Latency' has a bad gridPos"),
    (lambda d: d["panels"][2].update(id=2), "panel id 2 is used twice"),
    (lambda d: d["panels"][1].update(datasource={"uid": "grafana"}), "panel 'Samples' does not use ${DS_PROMETHEUS}"),
    (lambda d: d["panels"][1].update(targets=[]), "panel 'Samples' has no queries"),
    (lambda d: d["templating"]["list"].pop(0), "no Prometheus data source variable DS_PROMETHEUS"),
    (lambda d: d["templating"]["list"].pop(2), "no template variable 'instance'"),
    (lambda d: d.pop("uid"), "no 'uid'"),
    (lambda d: d["templating"]["list"][1].update(query="up"), "variable job: expected label_values"),
])
def test_each_kind_of_broken_dashboard_is_named(tmp_path: Path, breakage, expected: str) -> None:
    dashboard = copy.deepcopy(good_dashboard())
    breakage(dashboard)
    problems = problems_of(tmp_path, dashboard)
    assert any(expected in problem for problem in problems), problems


def test_a_dashboard_that_is_not_json_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    problems: list[str] = []
    assert dashboards.check_dashboard(str(path), problems) == []
    assert "not valid JSON" in problems[0]


def test_rule_expressions_read_one_line_and_folded_forms(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
                     "      - alert: B\n        expr: >-\n          rate(hostmeter_ship_failures_total[5m])\n"
                     "            > 0 and hostmeter_bogus\n        for: 5m\n"
                     "      - alert: C\n        expr: 'hostmeter_outbox_full == 1'\n")
    problems: list[str] = []
    expressions = dashboards.rule_expressions(str(rules), problems)
    assert [expr for _, expr in expressions] == [
        "up == 0", "rate(hostmeter_ship_failures_total[5m]) > 0 and hostmeter_bogus", "hostmeter_outbox_full == 1"]
    assert problems == [f"{rules}: rule at line 7: unknown metric(s) ['hostmeter_bogus'] in "
                        "'rate(hostmeter_ship_failures_total[5m]) > 0 and hostmeter_bogus'"]


def test_metric_names_skip_functions_labels_keywords_and_strings() -> None:
    expr = ('sum by (instance) (rate(hostmeter_samples_total{job="x", name=~"hostmeter_fake.*"}[5m])) '
            '/ on (instance) group_left hostmeter_build_info unless absent(up) > bool 0 offset 5m')
    assert dashboards.metric_names(expr) == {"hostmeter_samples_total", "hostmeter_build_info", "up"}


def test_grafana_variables_become_promql() -> None:
    assert dashboards.grafana_to_promql('rate(x{job=~"$job",i=~"${instance_id}"}[$__rate_interval])') == \
        'rate(x{job=~".*",i=~".*"}[5m])'
