"""Peers the benchmark report holds hostmeter's figures against, built or started in the same run.

* ``floor_section``: the C floor for one full host sample. scripts/bench/host_reader.c is compiled
  with ``gcc -O2`` into the report's temporary folder and reads the files hostmeter's host
  collectors read each sample (/proc/stat, /proc/meminfo, /proc/diskstats, /proc/self/mountinfo,
  /proc/net/dev, /proc/loadavg, /proc/uptime; the boot ID is read once, so it is not in a sample)
  and calls statvfs on the filesystems its filesystem collector meters (default selection,
  ``bench_proc.metered_filesystems``), BENCH_FLOOR_ITERATIONS times: with descriptors kept open and
  pread from offset 0 to end of file (the floor), with a single pread per file, and with
  open/read/close. Thread CPU per full pass; hostmeter-bench's host_sample median ÷ the floor.
* ``nginx_section``: GET /get of a running agent (30 s periods, loopback) and Debian's nginx
  serving a static file with the same bytes (the agent's /get body fetched just before) from our
  own instance on 127.0.0.1 (a port the bench picked, configuration, pid and logs in the temporary
  folder, ``daemon off``), each with ``wrk -t2 -c8`` for BENCH_WRK_SECONDS, one after the other.
  nginx gets as many worker processes as hostmeter's HTTP server has event-loop threads: SwiftNIO's
  singleton group, one per CPU this process may run on; access log off (hostmeter logs no request
  lines) and unlimited requests per kept-alive connection (hostmeter's server does not close them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import SCRIPTS_DIR
from .agent import LISTEN_ANY_PORT, AgentProcess
from .bench_proc import CPUClock, metered_filesystems, parse_mountinfo
from .bench_production import free_port
from .httputil import get_once, wait_for
from .processes import Children

#: The files one host sample reads, in the order hostmeter's collectors run.
HOST_SAMPLE_FILES = (
    "/proc/stat",
    "/proc/meminfo",
    "/proc/diskstats",
    "/proc/self/mountinfo",
    "/proc/net/dev",
    "/proc/loadavg",
    "/proc/uptime",
)
HOST_READER_SOURCE = SCRIPTS_DIR / "bench" / "host_reader.c"
KAFKA_MOCK_SOURCE = SCRIPTS_DIR / "kafka" / "kafka_mock_cluster.c"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator is not None and denominator else None


# MARK: wrk


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


def wrk_figures(output: str) -> dict:
    """Requests, requests/s, percentiles (µs) and errors of one wrk --latency output."""
    latency = wrk_latency(output)
    errors = re.search(r"^\s+Socket errors: (.*)$", output, re.MULTILINE)
    non2xx = re.search(r"^\s+Non-2xx or 3xx responses: (\d+)$", output, re.MULTILINE)
    return {
        "requests": int(re.search(r"^\s+(\d+) requests in", output, re.MULTILINE).group(1)),
        "requests_per_second": wrk_requests_per_second(output),
        **{f"p{key}_us": parse_duration_us(latency[key]) for key in ("50", "75", "90", "99")},
        "socket_errors": errors.group(1) if errors else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(children: Children, port: int, seconds: int, path: str = "/get") -> str:
    """wrk's output for GET ``path`` over 8 connections on 2 threads for ``seconds``."""
    process = children.start(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        children.stop(process, grace=1)
        raise RuntimeError("wrk ran past its time limit") from None
    children.forget(process)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited {process.returncode}: {output}")
    return output


# MARK: C floor


def compile_host_reader(work: Path) -> tuple[Path, str]:
    """host_reader.c built with gcc -O2 in ``work``; the binary and gcc's version line."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("the C floor needs gcc (apt-get install gcc)")
    binary = work / "host_reader"
    built = subprocess.run(
        [gcc, "-O2", "-Wall", "-o", str(binary), str(HOST_READER_SOURCE)], capture_output=True, text=True, timeout=120
    )
    if built.returncode != 0:
        raise RuntimeError(f"gcc host_reader.c: {built.stderr.strip()}")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    return binary, version


def floor_arguments(binary: Path, iterations: int, files: tuple[str, ...], filesystems: list[str]) -> list[str]:
    arguments = [str(binary), "-n", str(iterations)]
    for path in files:
        arguments += ["-f", path]
    for path in filesystems:
        arguments += ["-s", path]
    return arguments


def floor_section(children: Children, work: Path, iterations: int, host_sample: dict | None) -> dict:
    """The C floor, and hostmeter-bench's host sample (``host_sample``, the report's section) against it."""
    binary, compiler = compile_host_reader(work)
    filesystems = metered_filesystems(parse_mountinfo(Path("/proc/self/mountinfo").read_text()))
    log(f"C floor: {iterations} full host samples per way of reading")
    measured = children.run_json(floor_arguments(binary, iterations, HOST_SAMPLE_FILES, filesystems), 600)
    floor = measured["modes"]["pread_kept"]["cpu"]["median_us"]
    section = {
        "source": "scripts/bench/host_reader.c, gcc -O2, thread CPU (CLOCK_THREAD_CPUTIME_ID) per full pass",
        "compiler": compiler,
        "files": list(HOST_SAMPLE_FILES),
        "statvfs": filesystems,
        "iterations": measured["iterations"],
        "modes": measured["modes"],
        "floor_us": floor,
        "floor_is": "pread_kept median: descriptors kept open, pread from offset 0 to end of file",
    }
    if host_sample is not None:
        hostmeter = host_sample["cpu"]["median_us"]
        section["hostmeter_host_sample_median_us"] = hostmeter
        section["hostmeter_over_floor"] = ratio(hostmeter, floor)
        section["hostmeter_over_open_read_close"] = ratio(
            hostmeter, measured["modes"]["open_read_close"]["cpu"]["median_us"]
        )
    return section


# MARK: nginx


def nginx_config(root: Path, port: int, workers: int, location: str = "location = /get { }", http: str = "") -> str:
    """nginx.conf for our own instance: in the foreground, everything it writes under ``root``,
    serving ``location`` (by default ``root``/html's /get) on 127.0.0.1:``port``; ``http`` adds
    directives to the http block."""
    return f"""# hostmeter bench (scripts/hostmeter_tools/bench_peers.py)
daemon off;
master_process on;
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type application/json;
    sendfile on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;{http}
    server {{
        listen 127.0.0.1:{port};
        root {root}/html;
        {location}
    }}
}}
"""


def nginx_version(binary: str) -> str:
    shown = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=30)
    return (shown.stderr or shown.stdout).strip()


def cpu_clocks(pids: list[int]) -> dict[int, CPUClock]:
    """A CPU clock per process of ``pids`` still alive."""
    clocks = {}
    for pid in pids:
        try:
            clocks[pid] = CPUClock(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return clocks


def child_pids(pid: int) -> list[int]:
    """The children of ``pid`` (nginx's workers) from /proc/PID/task/*/children, [] where the kernel lacks it."""
    pids: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(value) for value in children.read_text().split()]
        except OSError:
            continue
    return pids


def nginx_section(children: Children, binary: str, nginx: str, work: Path, seconds: int) -> dict:
    """GET /get of hostmeter and the same bytes from nginx, with wrk, one after the other."""
    if not os.access(nginx, os.X_OK):
        raise RuntimeError(f"{nginx} is missing (scripts/bench.sh report installs nginx-light)")
    workers = len(os.sched_getaffinity(0))
    folder = work / "get-vs-nginx"
    root = folder / "nginx"
    for made in (root / "html", root / "tmp"):
        made.mkdir(parents=True)
    # nginx's workers run as its unprivileged user: they need to reach the file (and nothing else).
    for traversed in (work, folder):
        traversed.chmod(0o711)
    for readable in (root, root / "html"):
        readable.chmod(0o755)
    agent = AgentProcess.with_config(
        binary,
        folder,
        {
            "host_id": "bench",
            "interval_seconds": 30,
            "state_dir": str(folder / "agent-state"),
            "instances_dir": str(folder / "instances.d"),
            "api": {"listen": LISTEN_ANY_PORT},
        },
        children=children,
    )
    section: dict = {
        "tool": "wrk -t2 -c8 --latency (client and servers share the CPUs, unpinned), hostmeter first",
        "seconds": seconds,
        "nginx": {"version": nginx_version(nginx), "worker_processes": workers},
        "worker_processes_why": "as many as hostmeter's HTTP event-loop threads (SwiftNIO: one per CPU)",
    }
    try:
        port = agent.start(timeout=20)
        wait_for(port, "/health", agent.process, 20)
        body = get_once(port, "/get")
        (root / "html" / "get").write_bytes(body)
        (root / "html" / "get").chmod(0o644)
        nginx_port = free_port()
        config = root / "nginx.conf"
        config.write_text(nginx_config(root, nginx_port, workers))
        with open(root / "stderr.log", "wb") as nginx_log:
            server = children.start(
                [nginx, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
                stdout=nginx_log,
                stderr=nginx_log,
                stdin=subprocess.DEVNULL,
            )
        served = wait_for(nginx_port, "/get", server, 20)
        if len(served) != len(body):
            raise RuntimeError(f"nginx served {len(served)} bytes, not the {len(body)} of /get")
        section["body_bytes"] = len(body)

        log(f"/get vs nginx: wrk on hostmeter for {seconds} s")
        clock = CPUClock(agent.pid)
        hostmeter = wrk_figures(run_wrk(children, port, seconds))
        hostmeter["cpu_ms"] = clock.since()["cpu_sched_live_threads_ms"]
        log(f"/get vs nginx: wrk on nginx for {seconds} s")
        workers_clocks = cpu_clocks([server.pid, *child_pids(server.pid)])
        served_by_nginx = wrk_figures(run_wrk(children, nginx_port, seconds))
        served_by_nginx["cpu_ms"] = round(
            sum(clock.since()["cpu_sched_live_threads_ms"] for clock in workers_clocks.values()), 3
        )
        served_by_nginx["processes_measured"] = len(workers_clocks)
    except Exception:
        log("hostmeter log tail:\n" + agent.log_tail())
        error_log = root / "error.log"
        if error_log.exists():
            log("nginx error log tail:\n" + error_log.read_text(errors="replace")[-2000:])
        raise
    finally:
        agent.stop()
        for process in list(children.processes):
            if process.args and process.args[0] == nginx:
                children.stop(process)
    for figures in (hostmeter, served_by_nginx):
        figures["cpu_per_request_us"] = round(figures["cpu_ms"] * 1000 / max(figures["requests"], 1), 2)
    section["hostmeter"] = hostmeter
    section["nginx"].update(served_by_nginx)
    section["hostmeter_over_nginx"] = ratio(hostmeter["requests_per_second"], served_by_nginx["requests_per_second"])
    return section


# MARK: a null consumer


def null_consumer_config(root: Path, port: int) -> str:
    """nginx.conf for a consumer that is never the bottleneck: every request to /events is read
    (up to 64 MiB) and answered 200 at once, nothing stored."""
    return nginx_config(
        root,
        port,
        1,
        location="""location = /events { return 200 '{"accepted":0}'; }""",
        http="\n    client_max_body_size 64m;\n    client_body_buffer_size 1m;",
    )


def outbox_to_null_consumer(
    children: Children, bench: str, nginx: str, work: Path, events: int, environment: dict
) -> dict:
    """``hostmeter-bench outbox`` drained over HTTP to Debian's nginx answering 200 to every batch:
    the shipper's own drain rate, which the Python test consumer (it stores every event) hides."""
    if not os.access(nginx, os.X_OK):
        raise RuntimeError(f"{nginx} is missing (scripts/bench.sh report installs nginx-light)")
    root = work / "null-consumer"
    (root / "tmp").mkdir(parents=True)
    port = free_port()
    config = root / "nginx.conf"
    config.write_text(null_consumer_config(root, port))
    with open(root / "stderr.log", "wb") as nginx_log:
        server = children.start(
            [nginx, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
            stdout=nginx_log,
            stderr=nginx_log,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(port, "/events", server, 20)
        return children.run_json(
            [bench, "outbox", "--events", str(events), "--consumer-url", f"http://127.0.0.1:{port}/events"],
            900,
            environment,
        )
    finally:
        children.stop(server)



# MARK: a NATS server


NATS_SERVER = "/usr/sbin/nats-server"


def outbox_to_nats(children: Children, bench: str, work: Path, events: int, environment: dict) -> dict:
    """``hostmeter-bench outbox`` drained to Debian's nats-server with JetStream (file storage) on
    127.0.0.1: the nats sink's drain rate, every event acknowledged by its PubAck."""
    if not os.access(NATS_SERVER, os.X_OK):
        raise RuntimeError(f"{NATS_SERVER} is missing (scripts/bench.sh report installs nats-server)")
    root = work / "nats-server"
    root.mkdir(parents=True)
    port, monitor = free_port(), free_port()
    with open(root / "server.log", "wb") as server_log:
        server = children.start(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-sd", str(root / "store")],
            stdout=server_log,
            stderr=server_log,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(monitor, "/healthz", server, 20)
        return children.run_json(
            [bench, "outbox", "--events", str(events), "--nats-url", f"nats://127.0.0.1:{port}"], 900, environment
        )
    finally:
        children.stop(server)


# MARK: a Kafka cluster


def outbox_to_kafka(children: Children, bench: str, work: Path, events: int, environment: dict) -> dict:
    """``hostmeter-bench outbox`` drained to librdkafka's mock cluster (three brokers on 127.0.0.1,
    a topic of four partitions replicated three times), held by scripts/kafka/kafka_mock_cluster.c
    built here with gcc: the kafka sink's drain rate, every record acknowledged by its delivery
    report (acks=all)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("the Kafka mock cluster needs gcc (apt-get install gcc)")
    helper = work / "kafka_mock_cluster"
    built = subprocess.run(
        [gcc, "-O2", "-o", str(helper), str(KAFKA_MOCK_SOURCE), "-lrdkafka", "-ldl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if built.returncode != 0:
        raise RuntimeError(f"gcc kafka_mock_cluster.c (librdkafka-dev installed?): {built.stderr.strip()}")
    cluster = children.start(
        [str(helper), "3", "bench", "4", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = cluster.stdout.readline() if cluster.stdout else b""
        try:
            bootstraps = json.loads(first)["bootstraps"]
        except (ValueError, KeyError) as error:
            raise RuntimeError(f"kafka_mock_cluster said {first!r}") from error
        return children.run_json(
            [bench, "outbox", "--events", str(events), "--kafka-brokers", bootstraps, "--kafka-topic", "bench"],
            900,
            environment,
        )
    finally:
        if cluster.stdin:
            cluster.stdin.close()
        children.stop(cluster)
