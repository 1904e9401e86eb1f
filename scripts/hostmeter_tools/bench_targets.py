"""Issue 18's targets checked against one report, and which binary the report measured.

``targets(report)`` gives the rows of the Targets table in the issue's order, each with its
figure, target and verdict (PASS, MISS, or NOT RUN when the report lacks the section):

1. CPU per hour at production cadence, node_exporter ÷ hostmeter (``production``): ≥ 2.
2. Wakeups (context switches of all threads) per sample at rest (``production``): ≤ 3.
3. One full host sample ÷ the C floor (``host_floor``): ≤ 1.5.
4. VmRSS and RssAnon after an hour's periods (``agent``): ≤ 20 MB and ≤ 5 MB (MB = 1,000 kB as
   /proc prints them).
5. 1,000 VMs, share of one core (``instances``, hostmeter-bench): < 0.5 %.
6. GET /get ÷ nginx requests/s (``get_vs_nginx``): ≥ 0.6, and /get's p99 < 1 ms.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def dig(report: dict, path: str) -> Any:
    """``report``'s value at a dotted ``path``, None where any part is missing."""
    value: Any = report
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


@dataclass(frozen=True)
class Target:
    """One row: ``value`` held to ``limit`` by ``comparison`` (``>=``, ``<=`` or ``<``)."""

    figure: str
    value: float | None
    comparison: str
    limit: float
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "NOT RUN"
        passed = {
            ">=": self.value >= self.limit,
            "<=": self.value <= self.limit,
            "<": self.value < self.limit,
        }[self.comparison]
        return "PASS" if passed else "MISS"

    def as_dict(self) -> dict:
        return {
            "figure": self.figure,
            "value": self.value,
            "target": f"{self.comparison} {self.limit:g}",
            "verdict": self.verdict,
            "detail": self.detail if self.value is not None else None,
        }


def megabytes(kilobytes: float | None) -> float | None:
    return round(kilobytes / 1000, 1) if kilobytes is not None else None


def targets(report: dict) -> list[Target]:
    """The rows of issue 18's Targets table, in its order, then its outbox-depth target (item 3)."""
    production = report.get("production") or {}
    agent_rest, agent_hour = dig(report, "agent.memory_at_rest") or {}, dig(report, "agent.memory_after_hour") or {}
    floor = report.get("host_floor") or {}
    nginx = report.get("get_vs_nginx") or {}
    hostmeter_p99 = dig(nginx, "hostmeter.p99_us")
    depth = report.get("outbox_depth") or {}
    return [
        Target(
            "CPU per hour, node_exporter ÷ hostmeter",
            production.get("cpu_ratio_node_exporter_over_hostmeter"),
            ">=",
            2,
            f"{dig(production, 'node_exporter.cpu_ms_per_hour')} vs {dig(production, 'hostmeter.cpu_ms_per_hour')} "
            f"ms/h over {production.get('seconds')} s, scrape every {dig(report, 'settings.scrape_interval')} s",
        ),
        Target(
            "wakeups per sample at rest (hostmeter)",
            dig(production, "hostmeter.wakeups.per_sample"),
            "<=",
            3,
            f"{dig(production, 'hostmeter.wakeups.per_hour')}/h; node_exporter "
            f"{dig(production, 'node_exporter.wakeups.per_hour')}/h",
        ),
        Target(
            "host sample ÷ C floor",
            floor.get("hostmeter_over_floor"),
            "<=",
            1.5,
            f"{floor.get('hostmeter_host_sample_median_us')} µs vs {floor.get('floor_us')} µs (pread, kept files)",
        ),
        Target(
            "VmRSS after an hour's periods (MB)",
            megabytes(agent_hour.get("vm_rss_kb")),
            "<=",
            20,
            f"at rest {megabytes(agent_rest.get('vm_rss_kb'))}; RssFile {megabytes(agent_hour.get('rss_file_kb'))}",
        ),
        Target(
            "RssAnon after an hour's periods (MB)",
            megabytes(agent_hour.get("rss_anon_kb")),
            "<=",
            5,
            f"at rest {megabytes(agent_rest.get('rss_anon_kb'))}",
        ),
        Target(
            "1,000 VMs, % of one core",
            dig(report, "instances.percent_of_one_core"),
            "<",
            0.5,
            f"hostmeter-bench instances, layout {dig(report, 'instances.layout')}",
        ),
        Target(
            "GET /get ÷ nginx, requests/s",
            nginx.get("hostmeter_over_nginx"),
            ">=",
            0.6,
            f"{dig(nginx, 'hostmeter.requests_per_second')} vs {dig(nginx, 'nginx.requests_per_second')} req/s, "
            f"{nginx.get('body_bytes')} bytes",
        ),
        Target(
            "GET /get p99 (ms)",
            round(hostmeter_p99 / 1000, 3) if hostmeter_p99 is not None else None,
            "<",
            1,
            f"nginx p99 {dig(nginx, 'nginx.p99_us')} µs; p50 {dig(nginx, 'hostmeter.p50_us')} vs "
            f"{dig(nginx, 'nginx.p50_us')} µs",
        ),
        Target(
            "sample commit, deep ÷ empty outbox",
            depth.get("sample_commit_deep_over_empty"),
            "<=",
            1.1,
            f"{dig(depth, 'deep.sample_commit_cpu_us')} vs {dig(depth, 'empty.sample_commit_cpu_us')} µs CPU, "
            f"{dig(depth, 'deep.pending')} pending",
        ),
        Target(
            "shipper step, deep ÷ empty outbox",
            depth.get("shipper_step_deep_over_empty"),
            "<=",
            1.1,
            f"{dig(depth, 'deep.shipper_step_cpu_us')} vs {dig(depth, 'empty.shipper_step_cpu_us')} µs CPU",
        ),
    ]


def format_targets(rows: list[Target]) -> str:
    """The rows as the table printed on stderr."""
    lines = ["", "issue 18 targets", f"  {'figure':40} {'value':>10} {'target':>8} {'verdict':>8}  detail"]
    for row in rows:
        value = "-" if row.value is None else f"{row.value:,.2f}"
        lines.append(
            f"  {row.figure:40} {value:>10} {f'{row.comparison} {row.limit:g}':>8} {row.verdict:>8}  "
            + (row.detail if row.value is not None else "")
        )
    return "\n".join(lines)


# MARK: node_exporter ÷ hostmeter


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


def ratio_rows(report: dict) -> list[tuple[str, str, float | None, float | None, str]]:
    """(key, label, node_exporter, hostmeter, note) for each comparable pair; None where a section
    was not run."""
    scrape_interval = dig(report, "settings.scrape_interval")
    rows = [
        (
            "cpu_gather_host_us",
            "CPU to gather the host once (µs)",
            dig(report, "node_exporter.metrics_scrape.cpu_per_scrape_us"),
            dig(report, "agent.hour_equivalent.cpu_per_sample_us"),
            "node_exporter per scrape vs hostmeter per sample (whole running process, period close included)",
        ),
        (
            "cpu_gather_host_vs_collectors_us",
            "  … vs hostmeter collectors only (µs)",
            dig(report, "node_exporter.metrics_scrape.cpu_per_scrape_us"),
            dig(report, "host_sample.cpu.median_us"),
            "node_exporter per scrape vs hostmeter-bench sample median (thread CPU, no HTTP, no period)",
        ),
        (
            "cpu_metrics_scrape_us",
            "CPU per /metrics scrape (µs)",
            dig(report, "node_exporter.metrics_scrape.cpu_per_scrape_us"),
            dig(report, "agent.metrics_scrape.cpu_per_scrape_us_less_samples"),
            "hostmeter renders its registry; node_exporter reads /proc and renders",
        ),
        (
            "scrape_wall_median_us",
            "/metrics wall, median (µs)",
            dig(report, "node_exporter.metrics_scrape.wall_median_us"),
            dig(report, "agent.metrics_scrape.wall_median_us"),
            "seen by the scrape client",
        ),
        (
            "cpu_production_ms_per_hour",
            "CPU per hour, production cadence (ms)",
            dig(report, "production.node_exporter.cpu_ms_per_hour"),
            dig(report, "production.hostmeter.cpu_ms_per_hour"),
            "hostmeter with its defaults (5 s samples, 30 s periods) vs node_exporter scraped every "
            f"{scrape_interval} s, side by side over the same time",
        ),
        (
            "wakeups_production_per_hour",
            "wakeups per hour, production cadence",
            dig(report, "production.node_exporter.wakeups.per_hour"),
            dig(report, "production.hostmeter.wakeups.per_hour"),
            "context switches of all threads, side by side over the same time",
        ),
        (
            "cpu_production_vms_ms_per_hour",
            "CPU per hour, with VMs registered (ms)",
            dig(report, "production_vms.node_exporter.cpu_ms_per_hour"),
            dig(report, "production_vms.hostmeter.cpu_ms_per_hour"),
            "hostmeter metering the VMs of production_vms (real cgroups and veths) vs node_exporter on the same host",
        ),
        (
            "wakeups_production_vms_per_hour",
            "wakeups per hour, with VMs registered",
            dig(report, "production_vms.node_exporter.wakeups.per_hour"),
            dig(report, "production_vms.hostmeter.wakeups.per_hour"),
            "",
        ),
        (
            "vm_rss_after_kb",
            "VmRSS after (kB)",
            dig(report, "node_exporter.memory_after_scrapes.vm_rss_kb"),
            dig(report, "agent.memory_after_hour.vm_rss_kb"),
            "node_exporter after the scrapes vs hostmeter after the hour",
        ),
        (
            "rss_anon_after_kb",
            "RssAnon after (kB)",
            dig(report, "node_exporter.memory_after_scrapes.rss_anon_kb"),
            dig(report, "agent.memory_after_hour.rss_anon_kb"),
            "private memory",
        ),
        (
            "rss_file_after_kb",
            "RssFile after (kB)",
            dig(report, "node_exporter.memory_after_scrapes.rss_file_kb"),
            dig(report, "agent.memory_after_hour.rss_file_kb"),
            "binary and library pages, shared and reclaimable",
        ),
        (
            "vm_rss_at_rest_kb",
            "VmRSS at rest (kB)",
            dig(report, "node_exporter.memory_at_rest.vm_rss_kb"),
            dig(report, "agent.memory_at_rest.vm_rss_kb"),
            "",
        ),
        (
            "rss_anon_at_rest_kb",
            "RssAnon at rest (kB)",
            dig(report, "node_exporter.memory_at_rest.rss_anon_kb"),
            dig(report, "agent.memory_at_rest.rss_anon_kb"),
            "",
        ),
    ]
    for run in ("production", "production_vms"):
        for key, label in (("vm_rss_kb", "VmRSS"), ("rss_anon_kb", "RssAnon"), ("rss_file_kb", "RssFile")):
            rows.append(
                (
                    f"{run}_{key}_at_end",
                    f"{label} at the end of {run} (kB)",
                    dig(report, f"{run}.node_exporter.memory_at_end.{key}"),
                    dig(report, f"{run}.hostmeter.memory_at_end.{key}"),
                    "",
                )
            )
    return rows


def ratios(report: dict) -> tuple[dict, list[tuple[str, float, float]]]:
    """node_exporter ÷ hostmeter for every pair the report has both sides of, and the rows of the
    human table (label, node_exporter, hostmeter)."""
    result: dict = {"direction": "node_exporter ÷ hostmeter (above 1: hostmeter uses less)"}
    table = []
    for key, label, exporter_value, hostmeter_value, note in ratio_rows(report):
        if exporter_value is None or hostmeter_value is None:
            continue
        result[key] = {
            "node_exporter": exporter_value,
            "hostmeter": hostmeter_value,
            "ratio": ratio(exporter_value, hostmeter_value),
        }
        if note:
            result[key]["note"] = note
        table.append((label, exporter_value, hostmeter_value))
    return result, table


def format_table(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        "",
        "node_exporter ÷ hostmeter (above 1: hostmeter uses less)",
        f"  {'':44} {'node_exporter':>14} {'hostmeter':>12} {'ratio':>8}",
    ]
    for label, exporter_value, hostmeter_value in rows:
        shown = ratio(exporter_value, hostmeter_value)
        lines.append(
            f"  {label:44} {exporter_value:>14,.1f} {hostmeter_value:>12,.1f} "
            f"{(f'{shown:.2f}×' if shown is not None else '-'):>8}"
        )
    return "\n".join(lines)


# MARK: The binary measured


def needed_libraries(readelf_dynamic: str) -> list[str]:
    """The NEEDED entries of ``readelf -d`` output."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf_dynamic)


def binary_info(path: Path) -> dict:
    """Path, size and linking of one binary: static Swift standard library when libswiftCore is not
    a NEEDED library."""
    info: dict = {"path": str(path), "resolved": str(path.resolve()), "bytes": path.stat().st_size}
    try:
        shown = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        info["static_swift_stdlib"] = None
        info["note"] = "readelf (binutils) is missing: linking unknown"
        return info
    needed = needed_libraries(shown.stdout)
    info["static_swift_stdlib"] = not any(name.startswith("libswiftCore") for name in needed)
    info["needed"] = needed
    info["modified"] = int(os.stat(path).st_mtime)
    return info


def describe_binary(name: str, info: dict) -> str:
    linking = {True: "static Swift stdlib", False: "dynamic Swift stdlib", None: "linking unknown"}
    return (
        f"{name}: {info['path']}, {info['bytes'] / 1e6:.1f} MB, {linking[info.get('static_swift_stdlib')]}, "
        f"{len(info.get('needed', []))} shared libraries"
    )
