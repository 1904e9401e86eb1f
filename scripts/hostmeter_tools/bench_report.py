"""hostmeter's figures in one JSON report, with node_exporter measured in the same run.

Run by ``scripts/bench.sh report`` (which builds the release binaries and installs wrk,
prometheus-node-exporter and cloudevents first); the JSON document goes to stdout (and to
``BENCH_OUT`` when set), progress and a table of the ratios to stderr.

Sections:

* ``host_sample``, ``period_close``, ``outbox``, ``instances``: ``hostmeter-bench`` runs (in-process
  thread CPU; the outbox drained to a file, over HTTP to the loopback consumer,
  hostmeter_tools.consumer, and to a null consumer, Debian's nginx answering 200, on 127.0.0.1).
* ``fleet``: ``hostmeter-bench fleet``, 10,000 hosts simulated with the shipper's pacing code: the
  consumer's events per second at a period boundary and after a 10-minute outage, pacing off and on.
* ``agent``: a real ``hostmeter run`` (release, loopback API on a port the kernel picks, state_dir
  and instances_dir in a temporary directory, default file sink) at its fastest cadence
  (sample_seconds 1): memory at rest and after an hour's worth of periods, CPU per sample of the
  whole process while nothing else talks to it, CPU per /metrics scrape, and GET /get with wrk.
* ``node_exporter``: Debian's prometheus-node-exporter, our own instance on 127.0.0.1 with only the
  collectors that read what hostmeter reads; CPU per /metrics scrape and memory at rest and after
  the scrapes, with the same scrape client.
* ``host_floor`` (bench_peers): the C floor for one full host sample, scripts/bench/host_reader.c
  compiled with gcc -O2 at run time, reading the same files with kept descriptors and pread (and
  with open/read/close); hostmeter-bench's host sample median ÷ that floor.
* ``get_vs_nginx`` (bench_peers): GET /get of a running agent and Debian's nginx serving a static
  file of the same bytes on 127.0.0.1, each with wrk -t2 -c8 for BENCH_WRK_SECONDS.
* ``production`` (bench_production): both running side by side at their production cadences
  (hostmeter's defaults; node_exporter scraped every BENCH_SCRAPE_INTERVAL s) for
  BENCH_PRODUCTION_SECONDS: CPU per hour (utime+stime and the scheduler's sum), wakeups (context
  switches of all threads) per hour and, for hostmeter, per sample (wall ÷ 5 s), and VmRSS,
  RssAnon and RssFile at the end; node_exporter ÷ hostmeter CPU.
* ``production_vms`` (bench_production): the same for BENCH_PRODUCTION_VM_SECONDS with
  BENCH_PRODUCTION_VMS VMs registered with hostmeter on real kernel objects (a cgroup per VM made
  with mkdir in each hierarchy hostmeter reads, a veth pair per VM with its host end down and
  without an address and its peer in a network namespace the bench made, a sparse image file),
  all removed afterwards, also on failure.
* ``ratios``: node_exporter ÷ hostmeter for each comparable pair; ``targets`` (bench_targets): issue
  18's Targets table with PASS, MISS or NOT RUN; ``binaries``: path, size and linking (static Swift
  standard library or not) of the binaries measured.

``--only SECTION[,SECTION]`` runs some of them: sample, period, outbox, outbox_depth, fleet, instances,
floor, agent, node_exporter, nginx, production, production_vms (in that order, which is also the full
run's).

CPU is utime+stime of the measured process from /proc/PID/stat (the kernel scales it to the
scheduler's exact runtime; the unit is a clock tick, 10 ms here), with the sum of
se.sum_exec_runtime over the live threads (/proc/PID/task/*/sched, ns) beside it as a finer check.
Wakeups are voluntary + nonvoluntary context switches summed over /proc/PID/task/*/status, read
every BENCH_WAKEUP_POLL_SECONDS during a run; the kernel drops an exited thread's counts (the
leader's /proc/PID/status holds only its own), so a thread that exits loses what it did since the
last read (bench_proc.SwitchCounter; ``threads_exited`` says how many did).

Settings (environment, each bounded): BENCH_OUT, BENCH_HOUR_PERIODS (120), BENCH_SAMPLES_PER_PERIOD
(1: interval_seconds = this × sample_seconds 1; 6 gives production's 6 samples per period at 6 s a
period), BENCH_REST_SAMPLES (5), BENCH_SCRAPES (1000), BENCH_WRK_SECONDS (10),
BENCH_SAMPLE_ITERATIONS (5000), BENCH_PERIOD_ITERATIONS (2000), BENCH_OUTBOX_EVENTS (100000),
BENCH_INSTANCE_PERIODS (10), BENCH_FLOOR_ITERATIONS (5000), BENCH_NODE_EXPORTER
(/usr/bin/prometheus-node-exporter), BENCH_NGINX (/usr/sbin/nginx), BENCH_PRODUCTION_SECONDS (600),
BENCH_PRODUCTION_VM_SECONDS (600), BENCH_PRODUCTION_VMS (100), BENCH_SCRAPE_INTERVAL (15),
BENCH_WAKEUP_POLL_SECONDS (1). The VM run needs root and iproute2.
Only the standard library is used; every wait and loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import REPO, bench_proc
from .agent import LISTEN_ANY_PORT, AgentProcess
from .bench_peers import (
    floor_section,
    nginx_section,
    outbox_to_kafka,
    outbox_to_nats,
    outbox_to_null_consumer,
    run_wrk,
    wrk_figures,
    wrk_latency,
    wrk_requests_per_second,
)
from .bench_proc import CPUClock, loadavg, memory
from .bench_production import free_port, metric, production_run
from .bench_targets import binary_info, describe_binary, format_table, format_targets, ratios, targets
from .consumer_process import ConsumerProcess
from .httputil import Scraper, get_once, wait_for
from .processes import Children

# node_exporter collectors reading what hostmeter's collectors read: cpu (/proc/stat per CPU),
# stat (/proc/stat: boot time, hostmeter's uptime with time), meminfo, diskstats, filesystem
# (mountinfo + statfs), netdev (/proc/net/dev), loadavg, time (the clock, for uptime). hostmeter's
# boot ID (/proc/sys/kernel/random/boot_id, read once) has no node_exporter collector.
NODE_EXPORTER_COLLECTORS = ["cpu", "stat", "meminfo", "diskstats", "filesystem", "netdev", "loadavg", "time"]
HOSTMETER_COLLECTORS = ["boot", "cpu", "memory", "disk", "filesystem", "network", "load", "uptime"]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def env_int(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        sys.exit(f"bench: {name}={text!r} is not a whole number")
    if not low <= value <= high:
        sys.exit(f"bench: {name} must be {low}…{high}, not {value}")
    return value


class Stopped(BaseException):
    """SIGTERM or SIGHUP: unwind so that the cleanup runs."""


def on_signal(signum: int, _frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


# MARK: Metrics


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p)))]


def scrape_loop(port: int, pid: int, count: int, seconds: float) -> dict:
    """`count` sequential GET /metrics (at most `seconds`), with the server's CPU over them."""
    scraper = Scraper(port)
    walls: list[float] = []
    first = last = b""
    clock = CPUClock(pid)
    deadline = time.monotonic() + seconds
    for index in range(count):
        start = time.perf_counter()
        status, body = scraper.get("/metrics")
        walls.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        if index == 0:
            first = body
        last = body
        if time.monotonic() > deadline:
            log(f"scrape loop stopped at its time limit after {index + 1} scrapes")
            break
    cpu = clock.since()
    scraper.close()
    done = len(walls)
    return {
        "scrapes": done,
        **cpu,
        "cpu_per_scrape_us": round(cpu["cpu_ms"] * 1000 / done, 1),
        "cpu_sched_per_scrape_us": round(cpu["cpu_sched_live_threads_ms"] * 1000 / done, 1),
        "wall_median_us": round(percentile(walls, 0.5) * 1e6, 1),
        "wall_p99_us": round(percentile(walls, 0.99) * 1e6, 1),
        "body_bytes": len(last),
        "series": series_count(last),
        "_first": first,
        "_last": last,
    }


# MARK: Sections


#: The sections ``--only`` can name, in the order a full report runs them.
SECTIONS = (
    "sample",
    "period",
    "outbox",
    "outbox_depth",
    "fleet",
    "instances",
    "floor",
    "agent",
    "node_exporter",
    "nginx",
    "production",
    "production_vms",
)


def hostmeter_bench_sections(
    children: Children, bench: str, work: Path, settings: dict, wanted: set[str], nginx: str = "/usr/sbin/nginx"
) -> dict:
    """The hostmeter-bench runs among ``wanted`` (sample, period, outbox, instances), as report sections;
    ``nginx`` serves as the null consumer of the outbox's HTTP drain."""
    environment = dict(os.environ, TMPDIR=str(work))
    shm = Path(tempfile.mkdtemp(prefix="hostmeter-report-", dir="/dev/shm")) if os.access("/dev/shm", os.W_OK) else work
    sample = period = outbox_file = outbox_http = outbox_null = outbox_nats = outbox_kafka = None
    instances = depth = fleet = None
    try:
        if "sample" in wanted:
            log(f"host sample: {settings['sample_iterations']} iterations")
            sample = children.run_json([bench, "sample", "--iterations", str(settings["sample_iterations"])], 300)
        if "period" in wanted:
            log(f"period close: {settings['period_iterations']} iterations")
            period = children.run_json(
                [bench, "period", "--iterations", str(settings["period_iterations"])], 600, environment
            )
        events = settings["outbox_events"]
        if "outbox" in wanted:
            log(f"outbox: {events} events, drained to a file")
            outbox_file = children.run_json([bench, "outbox", "--events", str(events)], 600, environment)
            log(f"outbox: {events} events, drained over HTTP to the loopback consumer")
            outbox_http = outbox_over_http(children, bench, work, events, environment)
            log(f"outbox: {events} events, drained over HTTP to a null consumer (nginx answering 200)")
            outbox_null = outbox_to_null_consumer(children, bench, nginx, work, events, environment)
            log(f"outbox: {events} events, published to a local nats-server's JetStream")
            outbox_nats = outbox_to_nats(children, bench, work, events, environment)
            log(f"outbox: {events} events, produced to librdkafka's mock cluster (3 brokers)")
            outbox_kafka = outbox_to_kafka(children, bench, work, events, environment)
        if "outbox_depth" in wanted:
            pending = settings["outbox_depth_pending"]
            log(f"outbox depth: a sample's commit and a shipper step, empty and with {pending} events pending")
            depth = children.run_json([bench, "outbox-depth", "--pending", str(pending)], 900, environment)
        if "fleet" in wanted:
            log("fleet: 10,000 simulated hosts at a period boundary and after a 10-minute outage, pacing off and on")
            fleet = children.run_json([bench, "fleet"], 300, environment)
        if "instances" in wanted:
            log(f"instances: 1,000 instances, v2 layout, {settings['instance_periods']} periods")
            instances = children.run_json(
                [
                    bench,
                    "instances",
                    "--kernel",
                    "--layout",
                    "v2",
                    "--count",
                    "1000",
                    "--periods",
                    str(settings["instance_periods"]),
                    "--json",
                    "--work-directory",
                    str(work),
                    "--tree-directory",
                    str(shm),
                ],
                900,
                environment,
            )
    finally:
        if shm != work:
            shutil.rmtree(shm, ignore_errors=True)
    sections = bench_sections(
        sample, period, outbox_file, outbox_http, instances, outbox_null, outbox_nats, outbox_kafka
    )
    if depth is not None:
        sections["outbox_depth"] = {"source": "hostmeter-bench outbox-depth (thread CPU, medians)", **depth}
    if fleet is not None:
        sections["fleet"] = {"source": "hostmeter-bench fleet (simulated time, the shipper's pacing code)", **fleet}
    return sections


def bench_sections(
    sample, period, outbox_file, outbox_http, instances, outbox_null=None, outbox_nats=None, outbox_kafka=None
) -> dict:
    """The report's sections from hostmeter-bench's JSON documents (None: not run)."""
    sections: dict = {}

    def distribution(value: dict) -> dict:
        return {key: round(value[key], 3) for key in ("median_us", "p90_us", "p99_us", "min_us")}

    if sample is not None:
        sections["host_sample"] = {
            "source": "hostmeter-bench sample (one full HostSampler pass, thread CPU time, in process)",
            "iterations": sample["iterations"],
            "collectors": sample["collectors"],
            "failures": sample["failures"],
            "cpu": distribution(sample["cpu"]),
            "wall": distribution(sample["wall"]),
            "per_collector_median_us": {
                key: round(value, 3) for key, value in sorted(sample["per_collector_median_us"].items())
            },
        }
    if period is not None:
        sections["period_close"] = {
            "source": "hostmeter-bench period (wall time of one closing step)",
            "iterations": period["iterations"],
            "engine": distribution(period["engine"]),
            "engine_and_commit": distribution(period["engine_and_commit"]),
            "engine_and_commit_chained": distribution(period["engine_and_commit_chained"]),
            "chain_per_event": distribution(period["chain_per_event"]),
            "commitment_of_1000": distribution(period["commitment_of_1000"]),
            "verify_per_event": distribution(period["verify_per_event"]),
            "database_synchronous": period["database_synchronous"],
        }
    if outbox_file is not None and outbox_http is not None:
        drains = (("file", outbox_file), ("http_null", outbox_null), ("nats", outbox_nats), ("kafka", outbox_kafka))
        sections["outbox"] = {
            "source": "hostmeter-bench outbox",
            "events": outbox_file["events"],
            "enqueue_batch_size": outbox_file["enqueue_batch_size"],
            "enqueue_batched_events_per_second": outbox_file["enqueue_batched_events_per_second"],
            "enqueue_single_events_per_second": outbox_file["enqueue_single_events_per_second"],
            "enqueue_batched_events_per_second_http_run": outbox_http["enqueue_batched_events_per_second"],
            "enqueue_single_events_per_second_http_run": outbox_http["enqueue_single_events_per_second"],
            "drain_batch_size": outbox_file["drain_batch_size"],
            "drain_file_events_per_second": outbox_file["drain_events_per_second"],
            "drain_http_events_per_second": outbox_http["drain_events_per_second"],
            "drain_http_consumer": "hostmeter_tools.consumer on 127.0.0.1 (Python, same machine)",
            "drain_http_null_events_per_second": outbox_null["drain_events_per_second"] if outbox_null else None,
            "drain_http_null_consumer": "Debian's nginx answering 200 to every POST, storing nothing (127.0.0.1)",
            "drain_nats_events_per_second": outbox_nats["drain_events_per_second"] if outbox_nats else None,
            "drain_nats_server": "Debian's nats-server with JetStream, file storage, one replica (127.0.0.1)",
            "drain_kafka_events_per_second": outbox_kafka["drain_events_per_second"] if outbox_kafka else None,
            "drain_kafka_cluster": "librdkafka's mock cluster, 3 brokers, 4 partitions replicated 3 times (127.0.0.1)",
            # The same drains from their first acknowledged batch on (the sink connected: a Kafka
            # producer's first batch waits up to a second for librdkafka's broker threads), and how
            # long that first batch took.
            "drain_steady_events_per_second": {
                name: run.get("drain_steady_events_per_second") for name, run in drains if run
            },
            "drain_first_batch_seconds": {name: run.get("drain_first_batch_seconds") for name, run in drains if run},
            "database_synchronous": outbox_file["database_synchronous"],
            # Request body bytes per event for each HTTP sink, plain and gzip (sink.compression).
            "wire_bytes_per_event": outbox_file.get("wire_bytes_per_event"),
        }
    if instances is not None:
        memory_points = (instances.get("memory") or {}).get("points", [])
        sections["instances"] = {
            "source": "hostmeter-bench instances --layout v2 --json (synthetic clock)",
            "count": instances["count"],
            "layout": instances["layout"],
            "periods": instances["periods"],
            "interval_seconds": instances["interval_seconds"],
            "sample_seconds": instances["sample_seconds"],
            "instance_sample_seconds": instances["instance_sample_seconds"],
            "cpu_per_period_median_ms": round(instances["cpu_per_period_median_ms"], 3),
            "cpu_per_period_max_ms": round(instances["cpu_per_period_max_ms"], 3),
            "target_cpu_per_period_ms": instances["target_cpu_per_period_ms"],
            "percent_of_one_core": round(instances["percent_of_one_core"], 4),
            "cpu_per_instance_per_period_us": round(instances["cpu_per_instance_per_period_us"], 3),
            "closing_sample_cpu_median_us": round(instances["closing_sample_cpu"]["median_us"], 1),
            "events_per_closing_sample": instances["events_per_closing_sample"],
            "memory_bytes_per_instance": round((instances.get("memory") or {}).get("bytes_per_instance", 0)),
            "memory_linear": (instances.get("memory") or {}).get("linear"),
            "memory_at_counts": {str(point["count"]): point["status"] for point in memory_points},
        }
    return sections


def outbox_over_http(children: Children, bench: str, work: Path, events: int, environment: dict) -> dict:
    consumer = ConsumerProcess(work, children=children, log=False, timeout=10)
    try:
        return children.run_json(
            [bench, "outbox", "--events", str(events), "--consumer-url", consumer.url], 900, environment
        )
    finally:
        consumer.stop(grace=5)


def wrk_get(children: Children, port: int, pid: int, seconds: int) -> dict:
    body = get_once(port, "/get")
    clock = CPUClock(pid)
    output = run_wrk(children, port, seconds)
    cpu = clock.since()
    figures = wrk_figures(output)
    return {
        "tool": "wrk -t2 -c8 --latency (client and agent share the 2 vCPUs, unpinned)",
        "route": "/get",
        "body_bytes": len(body),
        "seconds": seconds,
        **figures,
        "agent_cpu_ms": cpu["cpu_ms"],
        "agent_cpu_per_request_us": round(cpu["cpu_ms"] * 1000 / max(figures["requests"], 1), 2),
    }


def agent_section(children: Children, binary: str, work: Path, settings: dict) -> dict:
    interval = settings["samples_per_period"]
    periods = settings["hour_periods"]
    state = work / "agent-state"
    instances = work / "agent-instances.d"
    instances.mkdir()
    agent = AgentProcess.with_config(
        binary,
        work,
        {
            "host_id": "bench",
            "interval_seconds": interval,
            "sample_seconds": 1,
            "state_dir": str(state),
            "instances_dir": str(instances),
            "api": {"listen": LISTEN_ANY_PORT},
        },
        children=children,
    )
    log_path = agent.log_path
    section: dict = {
        "binary": "hostmeter run (release)",
        "config": {
            "interval_seconds": interval,
            "sample_seconds": 1,
            "api_listen": "127.0.0.1",
            "sink": "file (default, in state_dir)",
            "instances": 0,
            "host_metered": True,
        },
        "loadavg_before": loadavg(),
    }
    try:
        port = agent.start(timeout=20)
        wait_for(port, "/health", agent.process, 20)
        started = time.monotonic()
        # At rest: started and a few samples taken.
        rest = settings["rest_samples"]
        deadline = time.monotonic() + rest + 15
        body = b""
        while time.monotonic() < deadline:
            body = get_once(port, "/metrics")
            if (metric(body, "hostmeter_samples_total") or 0) >= rest:
                break
            time.sleep(0.5)
        time.sleep(0.3)
        section["memory_at_rest"] = {
            "samples": int(metric(body, "hostmeter_samples_total") or 0),
            "seconds_since_start": round(time.monotonic() - started, 1),
            **memory(agent.pid),
        }
        section["agent_version"] = json.loads(get_once(port, "/get")).get("agent_version")

        # An hour of periods, with nothing talking to the agent: its CPU is its own work.
        seconds = periods * interval
        log(f"agent: {periods} periods of {interval} s ({seconds} s), untouched")
        before = get_once(port, "/metrics")
        clock = CPUClock(agent.pid)
        end = time.monotonic() + seconds
        next_note = time.monotonic() + 30
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
            if not agent.alive():
                raise RuntimeError(f"hostmeter exited {agent.process.returncode}; see its log")
            if time.monotonic() >= next_note and end - time.monotonic() >= 1:
                log(f"agent: {end - time.monotonic():.0f} s left")
                next_note += 30
        cpu = clock.since()
        after = get_once(port, "/metrics")
        samples = int(metric(after, "hostmeter_samples_total") - metric(before, "hostmeter_samples_total"))
        periods_closed = int(
            metric(after, "hostmeter_periods_closed_total") - metric(before, "hostmeter_periods_closed_total")
        )
        section["hour_equivalent"] = {
            "periods_requested": periods,
            "samples": samples,
            "periods_closed": periods_closed,
            "events_delivered": int(
                metric(after, "hostmeter_events_delivered_total") - metric(before, "hostmeter_events_delivered_total")
            ),
            "samples_counted_from": "hostmeter_samples_total on /metrics (one scrape before, one after)",
            **cpu,
            "cpu_per_sample_us": round(cpu["cpu_ms"] * 1000 / max(samples, 1), 1),
            "cpu_sched_per_sample_us": round(cpu["cpu_sched_live_threads_ms"] * 1000 / max(samples, 1), 1),
            "percent_of_one_core": round(cpu["cpu_ms"] / 10 / max(cpu["wall_s"], 1e-9), 4),
            "note": "whole process: sample, the period it closes, its SQLite commit, shipping to the file sink, "
            "timers and idle threads",
        }
        section["memory_after_hour"] = {
            "seconds_since_start": round(time.monotonic() - started, 1),
            **memory(agent.pid),
        }
        section["state_dir_bytes"] = sum(path.stat().st_size for path in state.iterdir() if path.is_file())

        log(f"agent: {settings['scrapes']} GET /metrics")
        scrapes = scrape_loop(port, agent.pid, settings["scrapes"], 300)
        first, last = scrapes.pop("_first"), scrapes.pop("_last")
        during = int(metric(last, "hostmeter_samples_total") - metric(first, "hostmeter_samples_total"))
        # The agent keeps sampling during the loop: its samples' CPU is taken out.
        background_us = during * section["hour_equivalent"]["cpu_per_sample_us"]
        scrapes["samples_during"] = during
        scrapes["cpu_per_scrape_us_less_samples"] = round(
            (scrapes["cpu_ms"] * 1000 - background_us) / scrapes["scrapes"], 1
        )
        section["metrics_scrape"] = scrapes
        section["memory_after_scrapes"] = memory(agent.pid)

        log(f"agent: wrk GET /get for {settings['wrk_seconds']} s")
        section["api_get"] = wrk_get(children, port, agent.pid, settings["wrk_seconds"])
        section["memory_after_wrk"] = memory(agent.pid)
    except Exception:
        log("agent log tail:\n" + log_path.read_text(errors="replace")[-2000:])
        raise
    finally:
        status = agent.stop()
    section["exit_status"] = status
    section["loadavg_after"] = loadavg()
    return section


def exporter_collectors(binary: str) -> list[str]:
    """NODE_EXPORTER_COLLECTORS that this node_exporter has."""
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    supported = help_text.stdout + help_text.stderr
    return [name for name in NODE_EXPORTER_COLLECTORS if f"--collector.{name} " in supported]


def node_exporter_section(children: Children, binary: str, work: Path, settings: dict) -> dict:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    collectors = exporter_collectors(binary)
    port = free_port()
    arguments = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults"]
    arguments += [f"--collector.{name}" for name in collectors]
    section: dict = {
        "version": (version.stdout + version.stderr).splitlines()[0],
        "arguments": arguments[1:],
        "collectors": collectors,
        "collectors_missing": [name for name in NODE_EXPORTER_COLLECTORS if name not in collectors],
        "hostmeter_collectors": HOSTMETER_COLLECTORS,
        "mapping": "cpu+stat ↔ cpu (+ boot time), meminfo ↔ memory, diskstats ↔ disk, filesystem ↔ filesystem, "
        "netdev ↔ network, loadavg ↔ load, stat+time ↔ uptime; boot_id has no node_exporter collector",
        "defaults_kept": "exporter's own go_/process_/promhttp_ metrics, --runtime.gomaxprocs=1, filters as shipped",
        "loadavg_before": loadavg(),
    }
    log_path = work / "node_exporter.log"
    with open(log_path, "wb") as exporter_log:
        exporter = children.start(arguments, stdout=subprocess.DEVNULL, stderr=exporter_log, stdin=subprocess.DEVNULL)
    try:
        # At rest, as for the agent: started and as many gathers as the agent's rest samples.
        started = time.monotonic()
        wait_for(port, "/metrics", exporter, 20)
        for _ in range(settings["rest_samples"] - 1):
            time.sleep(1)
            get_once(port, "/metrics")
        time.sleep(0.3)
        section["memory_at_rest"] = {
            "scrapes": settings["rest_samples"],
            "seconds_since_start": round(time.monotonic() - started, 1),
            **memory(exporter.pid),
        }
        log(f"node_exporter: {settings['scrapes']} GET /metrics")
        scrapes = scrape_loop(port, exporter.pid, settings["scrapes"], 600)
        scrapes.pop("_first")
        scrapes.pop("_last")
        section["metrics_scrape"] = scrapes
        section["memory_after_scrapes"] = memory(exporter.pid)
    except Exception:
        log("node_exporter log tail:\n" + log_path.read_text(errors="replace")[-2000:])
        raise
    finally:
        children.stop(exporter)
    section["loadavg_after"] = loadavg()
    return section


# MARK: Report


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in (bench_proc.PROC / "cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": os.uname().release,
        "cpu_model": model,
        "memory_total_kb": int(
            re.search(r"^MemTotal:\s+(\d+)", (bench_proc.PROC / "meminfo").read_text(), re.M).group(1)
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_before": loadavg(),
        "shared": "other workers build and test on this machine at the same time; see the load averages",
    }


def commit() -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    return {"head": head.stdout.strip(), "tracked_files_changed": len(dirty.stdout.splitlines())}


def api_only(binary: str, seconds: int) -> dict:
    """``scripts/bench.sh api``: GET /get of a running agent (30 s periods, loopback) with wrk, and its
    memory before and after."""
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="hostmeter-api-"))
    try:
        agent = AgentProcess.with_config(
            binary,
            work,
            {
                "host_id": "bench",
                "interval_seconds": 30,
                "state_dir": str(work / "state"),
                "api": {"listen": LISTEN_ANY_PORT},
            },
            children=children,
        )
        port = agent.start(timeout=20)
        wait_for(port, "/health", agent.process, 10)
        before = memory(agent.pid)
        body = get_once(port, "/get")
        output = run_wrk(children, port, seconds)
        after = memory(agent.pid)
    finally:
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    latency = wrk_latency(output)

    def kb(figures: dict) -> dict:
        return {
            "VmRSS_kb": figures["vm_rss_kb"],
            "RssAnon_kb": figures["rss_anon_kb"],
            "RssFile_kb": figures["rss_file_kb"],
        }

    return {
        "route": "/get",
        "body_bytes": len(body),
        "connections": 8,
        "seconds": seconds,
        "requests_per_second": wrk_requests_per_second(output),
        "p50": latency["50"],
        "p99": latency["99"],
        "memory_before": kb(before),
        "memory_after": kb(after),
    }


def settings_from_environment() -> dict:
    """Every setting, from the environment (module docstring), each bounded."""
    return {
        "hour_periods": env_int("BENCH_HOUR_PERIODS", 120, 1, 720),
        "samples_per_period": env_int("BENCH_SAMPLES_PER_PERIOD", 1, 1, 30),
        "rest_samples": env_int("BENCH_REST_SAMPLES", 5, 1, 60),
        "scrapes": env_int("BENCH_SCRAPES", 1000, 10, 100_000),
        "wrk_seconds": env_int("BENCH_WRK_SECONDS", 10, 1, 300),
        "sample_iterations": env_int("BENCH_SAMPLE_ITERATIONS", 5000, 1, 1_000_000),
        "period_iterations": env_int("BENCH_PERIOD_ITERATIONS", 2000, 1, 1_000_000),
        "outbox_events": env_int("BENCH_OUTBOX_EVENTS", 100_000, 1, 10_000_000),
        "outbox_depth_pending": env_int("BENCH_OUTBOX_DEPTH_PENDING", 300_000, 0, 5_000_000),
        "instance_periods": env_int("BENCH_INSTANCE_PERIODS", 10, 1, 1000),
        "floor_iterations": env_int("BENCH_FLOOR_ITERATIONS", 5000, 1, 1_000_000),
        "production_seconds": env_int("BENCH_PRODUCTION_SECONDS", 600, 10, 3600),
        "production_vm_seconds": env_int("BENCH_PRODUCTION_VM_SECONDS", 600, 10, 3600),
        "production_vms": env_int("BENCH_PRODUCTION_VMS", 100, 1, 1000),
        "scrape_interval": env_int("BENCH_SCRAPE_INTERVAL", 15, 1, 300),
        "wakeup_poll_seconds": env_int("BENCH_WAKEUP_POLL_SECONDS", 1, 1, 60),
    }


def parse_only(text: str | None) -> list[str]:
    """The sections ``--only`` names (comma-separated), in SECTIONS order; all of them without it."""
    if not text:
        return list(SECTIONS)
    named = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in named if name not in SECTIONS]
    if unknown or not named:
        raise ValueError(f"--only takes {', '.join(SECTIONS)}; not {', '.join(unknown) or repr(text)}")
    return [name for name in SECTIONS if name in named]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hostmeter's figures and node_exporter's, as one JSON report.")
    parser.add_argument("--bin", required=True, help="the release build folder with hostmeter and hostmeter-bench")
    parser.add_argument(
        "--api",
        type=int,
        metavar="SECONDS",
        help="only GET /get with wrk for SECONDS, and the agent's memory (scripts/bench.sh api)",
    )
    parser.add_argument(
        "--only",
        metavar="SECTION[,SECTION]",
        help=f"run only these sections, in the usual order: {', '.join(SECTIONS)}",
    )
    arguments = parser.parse_args(argv)
    if arguments.api is not None:
        if not 1 <= arguments.api <= 3600:
            sys.exit(f"bench: --api must be 1…3600 seconds, not {arguments.api}")
        print(json.dumps(api_only(str(Path(arguments.bin) / "hostmeter"), arguments.api)))
        return
    try:
        wanted = parse_only(arguments.only)
    except ValueError as error:
        sys.exit(f"bench: {error}")
    settings = settings_from_environment()
    exporter = os.environ.get("BENCH_NODE_EXPORTER", "/usr/bin/prometheus-node-exporter")
    nginx = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
    binaries = Path(arguments.bin)
    needed = [binaries / "hostmeter", binaries / "hostmeter-bench"]
    if {"node_exporter", "production", "production_vms"} & set(wanted):
        needed.append(Path(exporter))
    if {"nginx", "outbox"} & set(wanted):
        needed.append(Path(nginx))
    for path in needed:
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is missing (scripts/bench.sh report builds and installs it)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="hostmeter-report-"))
    began = time.monotonic()
    hostmeter = str(binaries / "hostmeter")
    try:
        report: dict = {
            "report": "hostmeter bench report",
            "commit": commit(),
            "machine": machine(),
            "binaries": {name: binary_info(binaries / name) for name in ("hostmeter", "hostmeter-bench")},
            "settings": settings,
            "sections": wanted,
        }
        for name, info in report["binaries"].items():
            log("measuring " + describe_binary(name, info))
        report.update(
            hostmeter_bench_sections(children, str(binaries / "hostmeter-bench"), work, settings, set(wanted), nginx)
        )
        if "floor" in wanted:
            report["host_floor"] = floor_section(
                children, work, settings["floor_iterations"], report.get("host_sample")
            )
        if "agent" in wanted:
            report["agent"] = agent_section(children, hostmeter, work, settings)
            report["api_get"] = report["agent"].pop("api_get")
        if "node_exporter" in wanted:
            report["node_exporter"] = node_exporter_section(children, exporter, work, settings)
        if "nginx" in wanted:
            report["get_vs_nginx"] = nginx_section(children, hostmeter, nginx, work, settings["wrk_seconds"])
        collectors = (report.get("node_exporter") or {}).get("collectors")
        if "production" in wanted:
            report["production"] = production_run(
                children,
                hostmeter,
                exporter,
                collectors or exporter_collectors(exporter),
                work / "production",
                settings,
                settings["production_seconds"],
            )
        if "production_vms" in wanted:
            report["production_vms"] = production_run(
                children,
                hostmeter,
                exporter,
                collectors or exporter_collectors(exporter),
                work / "production-vms",
                settings,
                settings["production_vm_seconds"],
                vms=settings["production_vms"],
            )
        report["ratios"], rows = ratios(report)
        checked = targets(report)
        report["targets"] = [row.as_dict() for row in checked]
        report["machine"]["loadavg_after"] = loadavg()
        report["run_seconds"] = round(time.monotonic() - began, 1)
    finally:
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()
    if os.environ.get("BENCH_OUT"):
        Path(os.environ["BENCH_OUT"]).write_text(text)
    print(format_table(rows), file=sys.stderr)
    print(format_targets(checked), file=sys.stderr)
    print("", file=sys.stderr)
    for name, info in report["binaries"].items():
        print("measured " + describe_binary(name, info), file=sys.stderr)
    print(
        f"load average before {report['machine']['loadavg_before']}, after {report['machine']['loadavg_after']}; "
        f"run took {report['run_seconds']:.0f} s",
        file=sys.stderr,
    )


def run(argv: list[str] | None = None) -> int:
    """``main`` with its stops and errors turned into a message and an exit status."""
    try:
        main(argv)
    except (Stopped, KeyboardInterrupt) as stop:
        sys.exit(f"bench: stopped ({stop})")
    except (RuntimeError, OSError, ValueError) as error:
        sys.exit(f"bench: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
