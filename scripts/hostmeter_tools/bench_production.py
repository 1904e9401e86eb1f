"""hostmeter and node_exporter side by side at their production cadences, with and without VMs.

``production_run`` starts a real ``hostmeter run`` with its defaults (a sample every 5 s, a period
every 30 s, the file sink, the API on loopback) and Debian's node_exporter with the collectors
that read what hostmeter reads, scraped every ``scrape_interval`` seconds (Prometheus' usual 15 s)
on 127.0.0.1, and measures both over the same wall time: CPU (utime+stime and the scheduler's
sum over live threads), wakeups (context switches of all threads, ``bench_proc.SwitchCounter``
read every ``poll_seconds``), and VmRSS, RssAnon and RssFile at the end. Nothing talks to
hostmeter during the window; its samples are counted from /metrics just before and just after.

With ``vms`` > 0 hostmeter meters that many instances on real kernel objects made by
``VMFixture``: a cgroup per VM made with mkdir in every hierarchy hostmeter reads (cgroup2 and
the v1 cpuacct, memory and blkio controllers, from /proc/self/mountinfo), a veth pair per VM
whose host end (down, no address) is the VM's tap and whose other end sits in a network namespace
the bench made, a sparse image file per VM, and a manifest per VM in ``instances_dir``. Every
object is removed afterwards, also when the run fails or is stopped; objects left by a bench that
was killed (its pid gone) are removed at the next start.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import config as configuration
from .agent import LISTEN_ANY_PORT, AgentProcess
from .bench_proc import CPUClock, SwitchCounter, cgroup_roots, memory, parse_mountinfo, wakeups
from .httputil import get_once, wait_for
from .processes import Children

#: hostmeter's default sample_seconds: what "per sample" divides by.
DEFAULT_SAMPLE_SECONDS = 5
#: Names of the objects a report makes, with its pid: cgroups and the network namespace.
OBJECT_PREFIX = "hostmeter-report-"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def metric(body: bytes, name: str) -> float | None:
    """The value of an unlabelled series in a Prometheus text body, or None."""
    match = re.search(rb"^" + re.escape(name.encode()) + rb"(?:\{\})? ([0-9.eE+-]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


def free_port() -> int:
    """A free loopback port for node_exporter and nginx, which cannot say which port they bound (the
    agent listens on port 0 and logs its port: ``AgentProcess``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def interface_name(pid: int, index: int) -> str:
    """The host end of VM ``index``'s veth: at most 15 bytes (IFNAMSIZ less its NUL) for index < 1000."""
    return f"hm{pid % 100000:05d}v{index}"


def vm_name(index: int) -> str:
    return f"vm-{index:05d}"


def manifest(index: int, cgroup: str, interface: str, image: str) -> dict:
    """One VM's manifest (docs/CONFIG.md, Instances)."""
    return {
        "instance_id": vm_name(index),
        "user_id": f"user-{index % 97}",
        "org_id": f"org-{index % 13}",
        "cgroup": cgroup,
        "interfaces": [interface],
        "disks": [image],
        "vcpus": index % 4 + 1,
    }


def ip_batch(commands: list[str], force: bool) -> subprocess.CompletedProcess:
    """``ip -batch -`` over ``commands`` (one a line); with ``force`` it goes on past a failing line."""
    arguments = ["ip", *(["-force"] if force else []), "-batch", "-"]
    return subprocess.run(arguments, input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=120)


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


class VMFixture:
    """``count`` VMs' kernel objects and manifests; ``create`` then ``remove`` (always, in a finally)."""

    def __init__(self, work: Path, count: int) -> None:
        if not 1 <= count <= 1000:
            raise ValueError(f"1…1000 VMs, not {count}")
        self.work, self.count, self.pid = work, count, os.getpid()
        self.name = f"{OBJECT_PREFIX}{self.pid}"
        self.manifests = work / "instances.d"
        self.images = work / "images"
        self.cgroups: list[Path] = []  # made, parents first
        self.namespace: str | None = None
        self.interfaces: list[str] = []
        self.roots: dict[str, str] = {}

    def create(self) -> VMFixture:
        if os.geteuid() != 0:
            raise RuntimeError("VMs on real cgroups and veths need root")
        if shutil.which("ip") is None:
            raise RuntimeError("VMs need iproute2's ip")
        remove_stale()
        self.roots = cgroup_roots(parse_mountinfo(Path("/proc/self/mountinfo").read_text()))
        if not self.roots:
            raise RuntimeError("no cgroup hierarchy that hostmeter reads is mounted")
        self.manifests.mkdir(parents=True)
        self.images.mkdir(parents=True)
        for root in self.roots.values():
            self._mkdir(Path(root) / self.name)
            for index in range(self.count):
                self._mkdir(Path(root) / self.name / vm_name(index))
        added = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True, timeout=30)
        if added.returncode != 0:
            raise RuntimeError(f"ip netns add {self.name}: {added.stderr.strip()}")
        self.namespace = self.name
        # Host end: down and without an address (no IPv6 link-local either); the peer is in the
        # namespace made above.
        names = [interface_name(self.pid, index) for index in range(self.count)]
        self.interfaces = names
        made = ip_batch(
            [f"link add {name} type veth peer name eth{index} netns {self.name}" for index, name in enumerate(names)],
            force=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"ip link add (veth): {made.stderr.strip()[-500:]}")
        for index, name in enumerate(names):
            if not Path(f"/sys/class/net/{name}").exists():
                raise RuntimeError(f"veth {name} was not made")
            image = self.images / f"{vm_name(index)}.img"
            with open(image, "wb") as file:
                file.truncate(1 << 30)
                file.seek((index % 8) << 20)
                file.write(b"\xa5" * 4096)
            configuration.write(
                self.manifests / f"{vm_name(index)}.yaml",
                manifest(index, f"{self.name}/{vm_name(index)}", name, str(image)),
            )
        return self

    def _mkdir(self, path: Path) -> None:
        path.mkdir()
        self.cgroups.append(path)

    def describe(self) -> dict:
        return {
            "count": self.count,
            "cgroup_hierarchies": self.roots,
            "cgroup_parent": self.name,
            "cgroups": "mkdir per VM in each hierarchy (empty: no process in them)",
            "network_namespace": self.namespace,
            "interfaces": f"veth pairs {interface_name(self.pid, 0)}…: host end down, no address; "
            "peer in the namespace",
            "disks": "a sparse 1 GiB image file per VM (one 4 KiB block written)",
        }

    def remove(self) -> list[str]:
        """Removes every object made (links, namespace, cgroups, newest first); what could not be removed."""
        problems = []
        if self.interfaces:
            present = [name for name in self.interfaces if Path(f"/sys/class/net/{name}").exists()]
            if present:
                ip_batch([f"link del {name}" for name in present], force=True)
            left = [name for name in self.interfaces if Path(f"/sys/class/net/{name}").exists()]
            problems += [f"link {name} is still there" for name in left]
            self.interfaces = left
        if self.namespace:
            deleted = subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, text=True, timeout=30)
            if deleted.returncode != 0:
                problems.append(f"ip netns del {self.namespace}: {deleted.stderr.strip()}")
            else:
                self.namespace = None
        for path in reversed(list(self.cgroups)):
            if remove_cgroup(path):
                self.cgroups.remove(path)
            else:
                problems.append(f"cgroup {path} is still there")
        return problems


def remove_cgroup(path: Path) -> bool:
    """rmdir of one cgroup, retried for a moment (the kernel can hold a just-emptied one briefly)."""
    for _ in range(20):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.05)
    return False


def remove_stale() -> None:
    """Removes the cgroups and network namespaces a report that no longer runs left behind."""
    stale = re.compile(re.escape(OBJECT_PREFIX) + r"(\d+)\Z")
    roots = cgroup_roots(parse_mountinfo(Path("/proc/self/mountinfo").read_text()))
    for root in roots.values():
        for parent in Path(root).glob(OBJECT_PREFIX + "*"):
            match = stale.match(parent.name)
            if match and not pid_alive(int(match.group(1))) and parent.is_dir():
                for child in sorted(parent.iterdir()):
                    if child.is_dir():
                        remove_cgroup(child)
                if remove_cgroup(parent):
                    log(f"removed the stale cgroup {parent}")
    netns = Path("/run/netns")
    if netns.is_dir():
        for entry in netns.iterdir():
            match = stale.match(entry.name)
            if match and not pid_alive(int(match.group(1))):
                subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, timeout=30)
                log(f"removed the stale network namespace {entry.name} (its veths with it)")


def wait_instances_running(agent: AgentProcess, count: int, seconds: float) -> dict:
    """/health's ``instances`` once ``count`` of them run, at most ``seconds`` (instances are probed every
    15 s by default)."""
    deadline = time.monotonic() + seconds
    instances: dict = {}
    while time.monotonic() < deadline:
        instances = (agent.get("/health") or {}).get("instances") or {}
        if instances.get("running", 0) >= count:
            return instances
        if not agent.alive():
            raise RuntimeError("hostmeter exited while its instances were being probed")
        time.sleep(0.5)
    raise RuntimeError(f"{count} instances were not all running after {seconds:.0f} s: {instances}")


def per_hour(cpu: dict) -> dict:
    """CPU per hour by the scheduler's sum and by utime+stime, and the share of one core."""
    wall = cpu["wall_s"]
    sched = cpu["cpu_sched_live_threads_ms"]
    return {
        **cpu,
        "cpu_ms_per_hour": round(sched * 3600 / wall, 1),
        "cpu_ticks_ms_per_hour": round(cpu["cpu_ms"] * 3600 / wall, 1),
        "percent_of_one_core": round(sched / 10 / wall, 4),
    }


def production_run(
    children: Children,
    binary: str,
    exporter_binary: str,
    collectors: list[str],
    work: Path,
    settings: dict,
    seconds: int,
    vms: int = 0,
) -> dict:
    """Both side by side for ``seconds`` (see the module's description); ``vms`` VMs registered."""
    interval, poll = settings["scrape_interval"], settings["wakeup_poll_seconds"]
    work.mkdir(parents=True)
    fixture = VMFixture(work / "vms", vms) if vms else None
    result: dict = {"seconds": seconds}
    try:
        if fixture is not None:
            log(f"production with {vms} VMs: making cgroups, veths, images and manifests")
            fixture.create()
            result["vms"] = fixture.describe()
            instances = fixture.manifests
        else:
            instances = work / "instances.d"
            instances.mkdir()
        config = configuration.write(
            work / "hostmeter.yaml",
            {
                "host_id": "bench",
                "state_dir": str(work / "state"),
                "instances_dir": str(instances),
                "api": {"listen": LISTEN_ANY_PORT},
            },
        )
        agent = AgentProcess(binary, config, work / "agent.log", children=children)
        exporter_port = free_port()
        arguments = [exporter_binary, f"--web.listen-address=127.0.0.1:{exporter_port}", "--collector.disable-defaults"]
        arguments += [f"--collector.{name}" for name in collectors]
        port = agent.start(timeout=20)
        with open(work / "exporter.log", "wb") as exporter_log:
            exporter = children.start(
                arguments, stdout=subprocess.DEVNULL, stderr=exporter_log, stdin=subprocess.DEVNULL
            )
        try:
            wait_for(port, "/health", agent.process, 20)
            wait_for(exporter_port, "/metrics", exporter, 20)
            if fixture is not None:
                result["instances_at_start"] = wait_instances_running(agent, vms, 60)
            time.sleep(2)
            before = get_once(port, "/metrics")
            log(
                f"production cadence{f' with {vms} VMs' if vms else ''}: {seconds} s, hostmeter with its defaults, "
                f"node_exporter scraped every {interval} s"
            )
            agent_clock, exporter_clock = CPUClock(agent.pid), CPUClock(exporter.pid)
            agent_switches, exporter_switches = SwitchCounter(agent.pid).start(), SwitchCounter(exporter.pid).start()
            start = time.monotonic()
            end = start + seconds
            next_scrape, next_poll, next_note = start, start + poll, start + 60
            scrapes = 0
            while (now := time.monotonic()) < end:
                if now >= next_scrape:
                    get_once(exporter_port, "/metrics")
                    scrapes += 1
                    next_scrape += interval
                if now >= next_poll:
                    agent_switches.poll()
                    exporter_switches.poll()
                    next_poll += poll
                if now >= next_note:
                    log(f"production: {end - now:.0f} s left")
                    next_note += 60
                for process in (agent.process, exporter):
                    if process.poll() is not None:
                        raise RuntimeError(f"{process.args[0]} exited {process.returncode}")
                time.sleep(max(0.0, min(next_scrape, next_poll, end) - time.monotonic()))
            agent_switches.poll()
            exporter_switches.poll()
            agent_cpu, exporter_cpu = agent_clock.since(), exporter_clock.since()
            agent_memory, exporter_memory = memory(agent.pid), memory(exporter.pid)
            after = get_once(port, "/metrics")
            if fixture is not None:
                result["instances_at_end"] = (agent.get("/health") or {}).get("instances")
        except Exception:
            log("hostmeter log tail:\n" + agent.log_tail())
            raise
        finally:
            agent.stop()
            children.stop(exporter)
    finally:
        if fixture is not None:
            problems = fixture.remove()
            if problems:
                log("could not remove: " + "; ".join(problems))
            result["vms_removed"] = not problems

    samples = (metric(after, "hostmeter_samples_total") or 0) - (metric(before, "hostmeter_samples_total") or 0)
    result["hostmeter"] = {
        "cadence": "defaults: sample_seconds 5, interval_seconds 30, file sink",
        "samples_counted": int(samples),
        **per_hour(agent_cpu),
        "wakeups": wakeups(agent_switches.totals(), agent_cpu["wall_s"], DEFAULT_SAMPLE_SECONDS),
        "memory_at_end": agent_memory,
    }
    result["node_exporter"] = {
        "cadence": f"one scrape every {interval} s",
        "scrapes": scrapes,
        **per_hour(exporter_cpu),
        "wakeups": wakeups(exporter_switches.totals(), exporter_cpu["wall_s"]),
        "memory_at_end": exporter_memory,
    }
    hostmeter_cpu = result["hostmeter"]["cpu_ms_per_hour"]
    result["cpu_ratio_node_exporter_over_hostmeter"] = (
        round(result["node_exporter"]["cpu_ms_per_hour"] / hostmeter_cpu, 2) if hostmeter_cpu else None
    )
    ticks = result["hostmeter"]["cpu_ticks_ms_per_hour"]
    result["cpu_ticks_ratio_node_exporter_over_hostmeter"] = (
        round(result["node_exporter"]["cpu_ticks_ms_per_hour"] / ticks, 2) if ticks else None
    )
    result["note"] = (
        "CPU per hour by the scheduler's sum over live threads (cpu_ms_per_hour) and by utime+stime "
        "(cpu_ticks_ms_per_hour, dead threads included, 10 ms ticks); wakeups are context switches of all "
        f"threads, read every {poll} s (a thread that exits loses what it did since the last read); "
        "per sample = switches ÷ (wall ÷ 5 s)"
    )
    return result
