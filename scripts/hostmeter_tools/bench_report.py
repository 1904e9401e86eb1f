"""hostmeter's figures in one JSON report, with node_exporter measured in the same run.

Run by ``scripts/bench.sh report`` (which builds the release binaries and installs wrk,
prometheus-node-exporter and cloudevents first); the JSON document goes to stdout (and to
``BENCH_OUT`` when set), progress and a table of the ratios to stderr.

Sections:

* ``host_sample``, ``period_close``, ``outbox``, ``instances``: ``hostmeter-bench`` runs (in-process
  thread CPU; the outbox drained to a file and over HTTP to the loopback consumer,
  hostmeter_tools.consumer, on 127.0.0.1).
* ``agent``: a real ``hostmeter run`` (release, loopback API on a port the kernel picks, state_dir
  and instances_dir in a temporary directory, default file sink) at its fastest cadence
  (sample_seconds 1): memory at rest and after an hour's worth of periods, CPU per sample of the
  whole process while nothing else talks to it, CPU per /metrics scrape, and GET /get with wrk.
* ``node_exporter``: Debian's prometheus-node-exporter, our own instance on 127.0.0.1 with only the
  collectors that read what hostmeter reads; CPU per /metrics scrape and memory at rest and after
  the scrapes, with the same scrape client.
* ``production``: both running side by side at their production cadences for
  BENCH_PRODUCTION_SECONDS, with all of their CPU (idle timers included) per hour.
* ``ratios``: node_exporter ÷ hostmeter for each comparable pair.

CPU is utime+stime of the measured process from /proc/PID/stat (the kernel scales it to the
scheduler's exact runtime; the unit is a clock tick, 10 ms here), with the sum of
se.sum_exec_runtime over the live threads (/proc/PID/task/*/sched, ns) beside it as a finer check.

Settings (environment, each bounded): BENCH_OUT, BENCH_HOUR_PERIODS (120), BENCH_SAMPLES_PER_PERIOD
(1: interval_seconds = this × sample_seconds 1; 6 gives production's 6 samples per period at 6 s a
period), BENCH_REST_SAMPLES (5), BENCH_SCRAPES (1000), BENCH_WRK_SECONDS (10),
BENCH_SAMPLE_ITERATIONS (5000), BENCH_PERIOD_ITERATIONS (2000), BENCH_OUTBOX_EVENTS (100000),
BENCH_INSTANCE_PERIODS (10), BENCH_NODE_EXPORTER (/usr/bin/prometheus-node-exporter),
BENCH_PRODUCTION_SECONDS (120) and BENCH_SCRAPE_INTERVAL (15) for ``production``: both side by side at
their production cadences (hostmeter's defaults, node_exporter scraped every 15 s), CPU per hour.
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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import REPO
from . import config as configuration
from .agent import LISTEN_ANY_PORT, AgentProcess
from .consumer_process import ConsumerProcess
from .httputil import Scraper, get_once, wait_for
from .processes import Children

CLOCK_TICK = os.sysconf("SC_CLK_TCK")

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


# MARK: Processes


def free_port() -> int:
    """A free loopback port for node_exporter, which cannot say which port it bound (the agent listens
    on port 0 and logs its port: ``AgentProcess``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# MARK: /proc

#: Where the /proc readers below read (a folder of crafted files in the tests).
PROC = Path("/proc")


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (dead threads included), in clock ticks."""
    text = (PROC / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_sched_ns(pid: int) -> int:
    """se.sum_exec_runtime over the live threads, ns (threads that exited are not in it)."""
    total = 0.0
    for task in (PROC / str(pid) / "task").iterdir():
        try:
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1])
                    break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return int(total * 1e6)


class CPUClock:
    """CPU time of one process between two reads."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = cpu_ticks(pid)
        self.sched = cpu_sched_ns(pid)
        self.wall = time.monotonic()

    def since(self) -> dict:
        ticks = cpu_ticks(self.pid) - self.ticks
        sched = cpu_sched_ns(self.pid) - self.sched
        return {
            "cpu_ms": ticks * 1000 / CLOCK_TICK,
            "cpu_resolution_ms": 1000 / CLOCK_TICK,
            "cpu_sched_live_threads_ms": round(sched / 1e6, 3),
            "wall_s": round(time.monotonic() - self.wall, 3),
        }


def memory(pid: int) -> dict:
    wanted = {"VmRSS": "vm_rss_kb", "RssAnon": "rss_anon_kb", "RssFile": "rss_file_kb", "VmHWM": "vm_hwm_kb",
              "Threads": "threads"}
    result = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            result[wanted[key]] = int(value.split()[0])
    return result


def loadavg() -> list[float]:
    return [float(value) for value in (PROC / "loadavg").read_text().split()[:3]]


# MARK: Metrics


def metric(body: bytes, name: str) -> float | None:
    match = re.search(rb"^" + re.escape(name.encode()) + rb"(?:\{\})? ([0-9.eE+-]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


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


def hostmeter_bench_sections(children: Children, bench: str, work: Path, settings: dict) -> dict:
    environment = dict(os.environ, TMPDIR=str(work))
    shm = Path(tempfile.mkdtemp(prefix="hostmeter-report-", dir="/dev/shm")) if os.access("/dev/shm", os.W_OK) else work
    try:
        log(f"host sample: {settings['sample_iterations']} iterations")
        sample = children.run_json([bench, "sample", "--iterations", str(settings["sample_iterations"])], 300)
        log(f"period close: {settings['period_iterations']} iterations")
        period = children.run_json([bench, "period", "--iterations", str(settings["period_iterations"])], 600,
                                   environment)
        events = settings["outbox_events"]
        log(f"outbox: {events} events, drained to a file")
        outbox_file = children.run_json([bench, "outbox", "--events", str(events)], 600, environment)
        log(f"outbox: {events} events, drained over HTTP to the loopback consumer")
        outbox_http = outbox_over_http(children, bench, work, events, environment)
        log(f"instances: 1,000 instances, v2 layout, {settings['instance_periods']} periods")
        instances = children.run_json(
            [bench, "instances", "--kernel", "--layout", "v2", "--count", "1000",
             "--periods", str(settings["instance_periods"]),
             "--json", "--work-directory", str(work), "--tree-directory", str(shm)], 900, environment)
    finally:
        if shm != work:
            shutil.rmtree(shm, ignore_errors=True)

    def distribution(value: dict) -> dict:
        return {key: round(value[key], 3) for key in ("median_us", "p90_us", "p99_us", "min_us")}

    memory_points = (instances.get("memory") or {}).get("points", [])
    return {
        "host_sample": {
            "source": "hostmeter-bench sample (one full HostSampler pass, thread CPU time, in process)",
            "iterations": sample["iterations"],
            "collectors": sample["collectors"],
            "failures": sample["failures"],
            "cpu": distribution(sample["cpu"]),
            "wall": distribution(sample["wall"]),
            "per_collector_median_us": {key: round(value, 3) for key, value in
                                        sorted(sample["per_collector_median_us"].items())},
        },
        "period_close": {
            "source": "hostmeter-bench period (wall time of one closing step)",
            "iterations": period["iterations"],
            "engine": distribution(period["engine"]),
            "engine_and_commit": distribution(period["engine_and_commit"]),
            "database_synchronous": period["database_synchronous"],
        },
        "outbox": {
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
            "database_synchronous": outbox_file["database_synchronous"],
        },
        "instances": {
            "source": "hostmeter-bench instances --layout v2 --json (generated host on tmpfs, synthetic clock)",
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
        },
    }


def outbox_over_http(children: Children, bench: str, work: Path, events: int, environment: dict) -> dict:
    consumer = ConsumerProcess(work, children=children, log=False, timeout=10)
    try:
        return children.run_json([bench, "outbox", "--events", str(events), "--consumer-url", consumer.url], 900,
                                 environment)
    finally:
        consumer.stop(grace=5)


def parse_duration_us(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"wrk duration {text!r}")
    scale = {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[match.group(2)]
    return round(float(match.group(1)) * scale, 1)


def wrk_latency(output: str) -> dict[str, str]:
    """wrk's --latency percentiles as it prints them: {"50": "812.00us", "75": …, "90": …, "99": …}."""
    return dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE))


def wrk_requests_per_second(output: str) -> float:
    return float(re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.MULTILINE).group(1))


def run_wrk(children: Children, port: int, seconds: int) -> str:
    """wrk's output for GET /get over 8 connections on 2 threads for ``seconds``."""
    process = children.start(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/get"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        output, _ = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        children.stop(process, grace=1)
        raise RuntimeError("wrk ran past its time limit") from None
    children.forget(process)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited {process.returncode}: {output}")
    return output


def wrk_get(children: Children, port: int, pid: int, seconds: int) -> dict:
    body = get_once(port, "/get")
    clock = CPUClock(pid)
    output = run_wrk(children, port, seconds)
    cpu = clock.since()
    latency = wrk_latency(output)
    requests = int(re.search(r"^\s+(\d+) requests in", output, re.MULTILINE).group(1))
    errors = re.search(r"^\s+Socket errors: (.*)$", output, re.MULTILINE)
    non2xx = re.search(r"^\s+Non-2xx or 3xx responses: (\d+)$", output, re.MULTILINE)
    return {
        "tool": "wrk -t2 -c8 --latency (client and agent share the 2 vCPUs, unpinned)",
        "route": "/get",
        "body_bytes": len(body),
        "seconds": seconds,
        "requests": requests,
        "requests_per_second": wrk_requests_per_second(output),
        "p50_us": parse_duration_us(latency["50"]),
        "p75_us": parse_duration_us(latency["75"]),
        "p90_us": parse_duration_us(latency["90"]),
        "p99_us": parse_duration_us(latency["99"]),
        "socket_errors": errors.group(1) if errors else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "agent_cpu_ms": cpu["cpu_ms"],
        "agent_cpu_per_request_us": round(cpu["cpu_ms"] * 1000 / max(requests, 1), 2),
    }


def agent_section(children: Children, binary: str, work: Path, settings: dict) -> dict:
    interval = settings["samples_per_period"]
    periods = settings["hour_periods"]
    state = work / "agent-state"
    instances = work / "agent-instances.d"
    instances.mkdir()
    agent = AgentProcess.with_config(binary, work, {
        "host_id": "bench", "interval_seconds": interval, "sample_seconds": 1, "state_dir": str(state),
        "instances_dir": str(instances), "api": {"listen": LISTEN_ANY_PORT}}, children=children)
    log_path = agent.log_path
    section: dict = {
        "binary": "hostmeter run (release)",
        "config": {"interval_seconds": interval, "sample_seconds": 1, "api_listen": "127.0.0.1",
                   "sink": "file (default, in state_dir)", "instances": 0, "host_metered": True},
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
        section["memory_at_rest"] = {"samples": int(metric(body, "hostmeter_samples_total") or 0),
                                     "seconds_since_start": round(time.monotonic() - started, 1), **memory(agent.pid)}
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
        periods_closed = int(metric(after, "hostmeter_periods_closed_total")
                             - metric(before, "hostmeter_periods_closed_total"))
        section["hour_equivalent"] = {
            "periods_requested": periods,
            "samples": samples,
            "periods_closed": periods_closed,
            "events_delivered": int(metric(after, "hostmeter_events_delivered_total")
                                    - metric(before, "hostmeter_events_delivered_total")),
            "samples_counted_from": "hostmeter_samples_total on /metrics (one scrape before, one after)",
            **cpu,
            "cpu_per_sample_us": round(cpu["cpu_ms"] * 1000 / max(samples, 1), 1),
            "cpu_sched_per_sample_us": round(cpu["cpu_sched_live_threads_ms"] * 1000 / max(samples, 1), 1),
            "percent_of_one_core": round(cpu["cpu_ms"] / 10 / max(cpu["wall_s"], 1e-9), 4),
            "note": "whole process: sample, the period it closes, its SQLite commit, shipping to the file sink, "
                    "timers and idle threads",
        }
        section["memory_after_hour"] = {"seconds_since_start": round(time.monotonic() - started, 1),
                                        **memory(agent.pid)}
        section["state_dir_bytes"] = sum(path.stat().st_size for path in state.iterdir() if path.is_file())

        log(f"agent: {settings['scrapes']} GET /metrics")
        scrapes = scrape_loop(port, agent.pid, settings["scrapes"], 300)
        first, last = scrapes.pop("_first"), scrapes.pop("_last")
        during = int(metric(last, "hostmeter_samples_total") - metric(first, "hostmeter_samples_total"))
        # The agent keeps sampling during the loop: its samples' CPU is taken out.
        background_us = during * section["hour_equivalent"]["cpu_per_sample_us"]
        scrapes["samples_during"] = during
        scrapes["cpu_per_scrape_us_less_samples"] = round(
            (scrapes["cpu_ms"] * 1000 - background_us) / scrapes["scrapes"], 1)
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


def node_exporter_section(children: Children, binary: str, work: Path, settings: dict) -> dict:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    supported = help_text.stdout + help_text.stderr
    collectors = [name for name in NODE_EXPORTER_COLLECTORS if f"--collector.{name} " in supported]
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
        section["memory_at_rest"] = {"scrapes": settings["rest_samples"],
                                     "seconds_since_start": round(time.monotonic() - started, 1),
                                     **memory(exporter.pid)}
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


def production_section(children: Children, binary: str, exporter_binary: str, collectors: list[str], work: Path,
                       settings: dict) -> dict:
    """Both side by side at the cadences they run at in production, for BENCH_PRODUCTION_SECONDS.

    hostmeter with its defaults (a sample every 5 s, a period every 30 s, the file sink) and
    node_exporter scraped every BENCH_SCRAPE_INTERVAL seconds (Prometheus' usual 15 s), each
    measured over the same wall time: all of their CPU, idle timers included.
    """
    seconds = settings["production_seconds"]
    interval = settings["scrape_interval"]
    exporter_port = free_port()
    state = work / "production-state"
    instances = work / "production-instances.d"
    instances.mkdir()
    config = configuration.write(work / "production.yaml", {
        "host_id": "bench", "state_dir": str(state), "instances_dir": str(instances),
        "api": {"listen": LISTEN_ANY_PORT}})
    agent = AgentProcess(binary, config, work / "production-agent.log", children=children)
    arguments = [exporter_binary, f"--web.listen-address=127.0.0.1:{exporter_port}", "--collector.disable-defaults"]
    arguments += [f"--collector.{name}" for name in collectors]
    port = agent.start(timeout=20)
    with open(work / "production-exporter.log", "wb") as ne_log:
        exporter = children.start(arguments, stdout=subprocess.DEVNULL, stderr=ne_log, stdin=subprocess.DEVNULL)
    try:
        wait_for(port, "/health", agent.process, 20)
        wait_for(exporter_port, "/metrics", exporter, 20)
        time.sleep(2)
        log(f"production cadence: {seconds} s, hostmeter with its defaults, node_exporter scraped every {interval} s")
        agent_clock, exporter_clock = CPUClock(agent.pid), CPUClock(exporter.pid)
        end = time.monotonic() + seconds
        scrapes = 0
        while time.monotonic() < end:
            get_once(exporter_port, "/metrics")
            scrapes += 1
            time.sleep(max(0.0, min(interval, end - time.monotonic())))
            for process in (agent.process, exporter):
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited {process.returncode}")
        agent_cpu, exporter_cpu = agent_clock.since(), exporter_clock.since()
    finally:
        agent.stop()
        children.stop(exporter)

    def per_hour(cpu: dict) -> dict:
        milliseconds = cpu["cpu_sched_live_threads_ms"]
        return {**cpu, "cpu_ms_per_hour": round(milliseconds * 3600 / cpu["wall_s"], 1),
                "percent_of_one_core": round(milliseconds / 10 / cpu["wall_s"], 4)}

    return {
        "seconds": seconds,
        "hostmeter": {"cadence": "defaults: sample_seconds 5, interval_seconds 30, file sink", **per_hour(agent_cpu)},
        "node_exporter": {"cadence": f"one scrape every {interval} s", "scrapes": scrapes, **per_hour(exporter_cpu)},
        "note": "CPU by the scheduler's count (ns) over the same wall time; everything each process did, idle "
                "timers included",
    }


# MARK: Report


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in (PROC / "cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": os.uname().release,
        "cpu_model": model,
        "memory_total_kb": int(re.search(r"^MemTotal:\s+(\d+)", (PROC / "meminfo").read_text(), re.M).group(1)),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_before": loadavg(),
        "shared": "other workers build and test on this machine at the same time; see the load averages",
    }


def commit() -> dict:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True, timeout=30)
    return {"head": head.stdout.strip(), "tracked_files_changed": len(dirty.stdout.splitlines())}


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


def ratios(report: dict) -> tuple[dict, list[tuple[str, str, float, float, str]]]:
    """node_exporter ÷ hostmeter, and the rows of the human table."""
    agent, exporter = report["agent"], report["node_exporter"]
    scrape = exporter["metrics_scrape"]
    rows = [
        ("cpu_gather_host_us", "CPU to gather the host once (µs)", scrape["cpu_per_scrape_us"],
         agent["hour_equivalent"]["cpu_per_sample_us"],
         "node_exporter per scrape vs hostmeter per sample (whole running process, period close included)"),
        ("cpu_gather_host_vs_collectors_us", "  … vs hostmeter collectors only (µs)", scrape["cpu_per_scrape_us"],
         report["host_sample"]["cpu"]["median_us"],
         "node_exporter per scrape vs hostmeter-bench sample median (thread CPU, no HTTP, no period)"),
        ("cpu_metrics_scrape_us", "CPU per /metrics scrape (µs)", scrape["cpu_per_scrape_us"],
         agent["metrics_scrape"]["cpu_per_scrape_us_less_samples"],
         "hostmeter renders its registry; node_exporter reads /proc and renders"),
        ("scrape_wall_median_us", "/metrics wall, median (µs)", scrape["wall_median_us"],
         agent["metrics_scrape"]["wall_median_us"], "seen by the scrape client"),
        ("cpu_production_ms_per_hour", "CPU per hour, production cadence (ms)",
         report["production"]["node_exporter"]["cpu_ms_per_hour"], report["production"]["hostmeter"]["cpu_ms_per_hour"],
         "hostmeter with its defaults (5 s samples, 30 s periods) vs node_exporter scraped every "
         f"{report['settings']['scrape_interval']} s, side by side over the same time"),
        ("vm_rss_after_kb", "VmRSS after (kB)", exporter["memory_after_scrapes"]["vm_rss_kb"],
         agent["memory_after_hour"]["vm_rss_kb"], "node_exporter after the scrapes vs hostmeter after the hour"),
        ("rss_anon_after_kb", "RssAnon after (kB)", exporter["memory_after_scrapes"]["rss_anon_kb"],
         agent["memory_after_hour"]["rss_anon_kb"], "private memory"),
        ("rss_file_after_kb", "RssFile after (kB)", exporter["memory_after_scrapes"]["rss_file_kb"],
         agent["memory_after_hour"]["rss_file_kb"], "binary and library pages, shared and reclaimable"),
        ("vm_rss_at_rest_kb", "VmRSS at rest (kB)", exporter["memory_at_rest"]["vm_rss_kb"],
         agent["memory_at_rest"]["vm_rss_kb"], ""),
        ("rss_anon_at_rest_kb", "RssAnon at rest (kB)", exporter["memory_at_rest"]["rss_anon_kb"],
         agent["memory_at_rest"]["rss_anon_kb"], ""),
    ]
    result = {"direction": "node_exporter ÷ hostmeter (above 1: hostmeter uses less)"}
    for key, _, exporter_value, hostmeter_value, note in rows:
        result[key] = {"node_exporter": exporter_value, "hostmeter": hostmeter_value,
                       "ratio": ratio(exporter_value, hostmeter_value)}
        if note:
            result[key]["note"] = note
    return result, [(label, exporter_value, hostmeter_value) for _, label, exporter_value, hostmeter_value, _ in rows]


def print_table(rows) -> None:
    print("\nnode_exporter ÷ hostmeter (above 1: hostmeter uses less)", file=sys.stderr)
    print(f"  {'':40} {'node_exporter':>14} {'hostmeter':>12} {'ratio':>8}", file=sys.stderr)
    for label, exporter_value, hostmeter_value in rows:
        shown = ratio(exporter_value, hostmeter_value)
        print(f"  {label:40} {exporter_value:>14,.1f} {hostmeter_value:>12,.1f} "
              f"{(f'{shown:.2f}×' if shown is not None else '-'):>8}", file=sys.stderr)


def api_only(binary: str, seconds: int) -> dict:
    """``scripts/bench.sh api``: GET /get of a running agent (30 s periods, loopback) with wrk, and its
    memory before and after."""
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="hostmeter-api-"))
    try:
        agent = AgentProcess.with_config(binary, work, {
            "host_id": "bench", "interval_seconds": 30, "state_dir": str(work / "state"),
            "api": {"listen": LISTEN_ANY_PORT}}, children=children)
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
        return {"VmRSS_kb": figures["vm_rss_kb"], "RssAnon_kb": figures["rss_anon_kb"],
                "RssFile_kb": figures["rss_file_kb"]}

    return {"route": "/get", "body_bytes": len(body), "connections": 8, "seconds": seconds,
            "requests_per_second": wrk_requests_per_second(output), "p50": latency["50"], "p99": latency["99"],
            "memory_before": kb(before), "memory_after": kb(after)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hostmeter's figures and node_exporter's, as one JSON report.")
    parser.add_argument("--bin", required=True, help="the release build folder with hostmeter and hostmeter-bench")
    parser.add_argument("--api", type=int, metavar="SECONDS",
                        help="only GET /get with wrk for SECONDS, and the agent's memory (scripts/bench.sh api)")
    arguments = parser.parse_args(argv)
    if arguments.api is not None:
        if not 1 <= arguments.api <= 3600:
            sys.exit(f"bench: --api must be 1…3600 seconds, not {arguments.api}")
        print(json.dumps(api_only(str(Path(arguments.bin) / "hostmeter"), arguments.api)))
        return
    settings = {
        "hour_periods": env_int("BENCH_HOUR_PERIODS", 120, 1, 720),
        "samples_per_period": env_int("BENCH_SAMPLES_PER_PERIOD", 1, 1, 30),
        "rest_samples": env_int("BENCH_REST_SAMPLES", 5, 1, 60),
        "scrapes": env_int("BENCH_SCRAPES", 1000, 10, 100_000),
        "wrk_seconds": env_int("BENCH_WRK_SECONDS", 10, 1, 300),
        "sample_iterations": env_int("BENCH_SAMPLE_ITERATIONS", 5000, 1, 1_000_000),
        "period_iterations": env_int("BENCH_PERIOD_ITERATIONS", 2000, 1, 1_000_000),
        "outbox_events": env_int("BENCH_OUTBOX_EVENTS", 100_000, 1, 10_000_000),
        "instance_periods": env_int("BENCH_INSTANCE_PERIODS", 10, 1, 1000),
        "production_seconds": env_int("BENCH_PRODUCTION_SECONDS", 120, 10, 3600),
        "scrape_interval": env_int("BENCH_SCRAPE_INTERVAL", 15, 1, 300),
    }
    exporter = os.environ.get("BENCH_NODE_EXPORTER", "/usr/bin/prometheus-node-exporter")
    binaries = Path(arguments.bin)
    for path in (binaries / "hostmeter", binaries / "hostmeter-bench", Path(exporter)):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is missing (scripts/bench.sh report builds and installs it)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="hostmeter-report-"))
    began = time.monotonic()
    try:
        report: dict = {"report": "hostmeter bench report", "commit": commit(), "machine": machine(),
                        "settings": settings}
        report.update(hostmeter_bench_sections(children, str(binaries / "hostmeter-bench"), work, settings))
        report["agent"] = agent_section(children, str(binaries / "hostmeter"), work, settings)
        report["api_get"] = report["agent"].pop("api_get")
        report["node_exporter"] = node_exporter_section(children, exporter, work, settings)
        report["production"] = production_section(children, str(binaries / "hostmeter"), exporter,
                                                  report["node_exporter"]["collectors"], work, settings)
        report["ratios"], rows = ratios(report)
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
    print_table(rows)
    print(f"\nload average before {report['machine']['loadavg_before']}, after {report['machine']['loadavg_after']}; "
          f"run took {report['run_seconds']:.0f} s", file=sys.stderr)


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
