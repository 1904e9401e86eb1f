"""Checks packaging/grafana/hostmeter.json and packaging/prometheus/hostmeter-rules.yml.

- The dashboard is valid JSON with the variables it promises (DS_PROMETHEUS, job, instance,
  instance_id), every panel and query on the ${DS_PROMETHEUS} data source, unique panel ids, and
  panels that fit the 24-column grid without overlapping.
- Every metric name in a dashboard query, variable query or alert rule expression is one the agent
  exports (the list below, the /metrics contract of issue 7), or Prometheus's own `up`.
- With --promtool-rules FILE, the dashboard's queries (Grafana variables replaced) are written there
  as recording rules, so `promtool check rules FILE` can check their PromQL syntax.

Uses only the standard library. Exits 1 listing every problem found.
"""
import argparse
import json
import re
import sys

# The agent's /metrics names (counters end in _total; histograms also expose _bucket, _sum, _count).
METRICS = {
    "hostmeter_build_info", "hostmeter_samples_total", "hostmeter_collector_errors_total",
    "hostmeter_last_sample_timestamp_seconds", "hostmeter_periods_closed_total",
    "hostmeter_events_emitted_total", "hostmeter_metering_gaps_total", "hostmeter_store_failures_total",
    "hostmeter_outbox_pending_events", "hostmeter_outbox_dead_events", "hostmeter_outbox_bytes",
    "hostmeter_outbox_max_bytes", "hostmeter_outbox_full", "hostmeter_ship_attempts_total",
    "hostmeter_ship_failures_total", "hostmeter_events_delivered_total", "hostmeter_events_dead_lettered_total",
    "hostmeter_circuit_breaker_state", "hostmeter_api_auth_failures_total", "hostmeter_health_status",
    "hostmeter_instance_cpu_percent", "hostmeter_instance_memory_used_bytes", "hostmeter_instance_memory_percent",
    "hostmeter_instance_network_egress_bytes_per_second", "hostmeter_instance_network_ingress_bytes_per_second",
    "hostmeter_instance_period_cpu_seconds", "hostmeter_instance_storage_used_bytes",
    "hostmeter_host_filesystem_used_ratio", "hostmeter_host_load1_per_cpu",
    "hostmeter_gpu_utilization_ratio", "hostmeter_gpu_memory_used_bytes", "hostmeter_gpu_temperature_celsius",
    "hostmeter_gpu_power_watts",
}
HISTOGRAMS = {"hostmeter_sample_duration_seconds", "hostmeter_ship_duration_seconds"}
PROMETHEUS_OWN = {"up"}
ALLOWED = (METRICS | PROMETHEUS_OWN
           | {h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")})

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "atan2"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers outside strings, label matchers,
    ranges and grouping clauses that are not functions (followed by a parenthesis) or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("("):
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def grafana_to_promql(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", expr)


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def check_dashboard(path, problems):
    try:
        with open(path, encoding="utf-8") as file:
            dashboard = json.load(file)
    except (OSError, ValueError) as error:
        problems.append(f"{path}: not valid JSON: {error}")
        return []
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"{path}: no '{key}'")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("DS_PROMETHEUS")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append(f"{path}: no Prometheus data source variable DS_PROMETHEUS")
    for name in ("job", "instance", "instance_id"):
        if name not in variables:
            problems.append(f"{path}: no template variable '{name}'")

    expressions = []
    for name, variable in variables.items():
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        if not match:
            problems.append(f"{path}: variable {name}: expected label_values(selector, label), got {query!r}")
            continue
        expressions.append((f"variable {name}", match.group(1)))
        if variable.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            problems.append(f"{path}: variable {name} does not use ${{DS_PROMETHEUS}}")

    ids = set()
    occupied = {}
    for panel in all_panels(dashboard.get("panels", [])):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"{path}: panel id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append(f"{path}: panel '{title}' has a bad gridPos {grid}")
        else:
            for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
                if cell in occupied:
                    problems.append(f"{path}: panel '{title}' overlaps '{occupied[cell]}'")
                    break
                occupied[cell] = title
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            problems.append(f"{path}: panel '{title}' does not use ${{DS_PROMETHEUS}}")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{path}: panel '{title}' has no queries")
        for target in targets:
            if target.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
                problems.append(f"{path}: a query of '{title}' does not use ${{DS_PROMETHEUS}}")
            if not target.get("expr"):
                problems.append(f"{path}: a query of '{title}' has no expr")
                continue
            expressions.append((f"panel '{title}' {target.get('refId')}", target["expr"]))

    for where, expr in expressions:
        unknown = metric_names(expr) - ALLOWED
        if unknown:
            problems.append(f"{path}: {where}: unknown metric(s) {sorted(unknown)} in {expr!r}")
        if not metric_names(expr):
            problems.append(f"{path}: {where}: selects no metric: {expr!r}")
    return expressions


def rule_expressions(path, problems):
    """The `expr:` values of a rules file as this project writes it: `expr: X` on one line or a
    folded `expr: >-` block (no YAML library needed)."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as error:
        problems.append(f"{path}: {error}")
        return []
    expressions = []
    index = 0
    while index < len(lines):
        match = re.match(r"^(\s*)expr:\s*(.*)$", lines[index])
        index += 1
        if not match:
            continue
        line, indent, value = index, len(match.group(1)), match.group(2).strip()
        if value in (">-", ">", "|", "|-"):
            block = []
            while index < len(lines) and (not lines[index].strip() or
                                          len(lines[index]) - len(lines[index].lstrip()) > indent):
                block.append(lines[index].strip())
                index += 1
            value = " ".join(part for part in block if part)
        expressions.append((f"rule at line {line}", value.strip("'\"") if value[:1] in "'\"" else value))
    if not expressions:
        problems.append(f"{path}: no rule expressions found")
    for where, expr in expressions:
        unknown = metric_names(expr) - ALLOWED
        if unknown:
            problems.append(f"{path}: {where}: unknown metric(s) {sorted(unknown)} in {expr!r}")
    return expressions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", default="packaging/grafana/hostmeter.json")
    parser.add_argument("--rules", default="packaging/prometheus/hostmeter-rules.yml")
    parser.add_argument("--promtool-rules", help="write the dashboard's queries here as recording rules")
    arguments = parser.parse_args(argv)

    problems = []
    dashboard_expressions = check_dashboard(arguments.dashboard, problems)
    rules = rule_expressions(arguments.rules, problems)
    if arguments.promtool_rules:
        with open(arguments.promtool_rules, "w", encoding="utf-8") as file:
            file.write("groups:\n  - name: dashboard-queries\n    rules:\n")
            for index, (_where, expr) in enumerate(dashboard_expressions):
                file.write(f"      - record: dashboard:query_{index}\n")
                file.write(f"        expr: {json.dumps(grafana_to_promql(expr))}\n")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"dashboard: {len(dashboard_expressions)} queries, rules: {len(rules)} expressions, all metric names known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
