"""Chaos run: a real `hostmeter run` shipping to a real loopback consumer while faults hit both.

The agent samples every second and closes a 1-second period at a time, shipping over HTTP to the
loopback consumer (hostmeter_tools.consumer), which stores every event once by event_id in SQLite.
Meanwhile this script injects, in a seeded random order:

* kill -9 of the agent at random moments (also in the middle of other faults), then a restart;
* consumer outages (the port refuses connections), 5xx storms (with and without Retry-After),
  slow answers, hangs past the agent's timeout, connections cut before and after the events were
  stored (the second makes the agent resend what the consumer already has);
* SIGHUP with a configuration that does not validate (the agent must keep running on the old one);
* the outbox's filesystem filling up (state_dir on a small tmpfs, filled to the last byte);
* wall-clock steps forward and back, for the agent only (libfaketime), where available.

At the end the consumer is healthy, the agent is stopped with SIGTERM and everything is checked:

* host CPU: Σ cpu_seconds of the delivered host events, plus what the agent holds unbilled in its
  checkpoint (the open period and the sub-second carry), against the kernel's counter between the
  agent's first and last sample (the agent's own readings of /proc/stat at those samples, each
  checked against this script's readings of /proc/stat just before the first start and just after
  the last stop);
* instance CPU, where a cgroup2 tree is writable: a CPU burner runs in a cgroup metered as an
  instance, and its Σ cpu_seconds (+ carry) must equal the cgroup's usage_usec exactly;
* every instance's delivered periods are contiguous and never overlap (a hole is lost usage, an
  overlap is usage billed twice), no event id arrived with two different bodies, and the outbox is
  empty with no dead letters.

It prints one JSON report on stdout (and to --report) and exits 1 when anything was lost or billed
twice, or the agent died on its own; 2 on a set-up problem. Everything runs on 127.0.0.1 and every
wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as configuration
from . import usage_verify
from .agent import LISTEN_ANY_PORT, AgentProcess, AgentStartError
from .consumer_process import ConsumerProcess, ConsumerStartError
from .processes import process_state, wait_until

USER_HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
)


class SetupError(Exception):
    """The run could not be set up (exit 2): no binary, no consumer, the agent never came up."""


def log(message: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- kernel readers


def kernel_cpu_busy_ns() -> int:
    """The aggregate `cpu` line of /proc/stat: user+nice+system+irq+softirq+steal, nanoseconds.

    The same definition the agent bills (guest time is already inside user and nice)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                fields = [int(x) for x in line.split()[1:]]
                user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
                return (user + nice + system + irq + softirq + steal) * 1_000_000_000 // USER_HZ
    raise RuntimeError("/proc/stat has no aggregate cpu line")


def cgroup2_mount() -> str | None:
    """The cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def cgroup_usage_ns(path: str) -> int:
    with open(os.path.join(path, "cpu.stat")) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
    raise RuntimeError(f"{path}/cpu.stat has no usage_usec")


# ----------------------------------------------------------------------------- the agent


class Agent(AgentProcess):
    """The agent under test, restarted after every kill; an exit nobody asked for is recorded."""

    def __init__(self, binary: Path, config: Path, work: Path, faketime: dict[str, str] | None) -> None:
        super().__init__(binary, config, work / "agent.log", cwd=work, environment=faketime,
                         via_env=faketime is not None)
        self.unexpected_exits: list[dict[str, Any]] = []

    def start(self, timeout: float = 60) -> int:
        try:
            return super().start(timeout)
        except AgentStartError as error:
            raise SetupError(str(error)) from None

    def check_alive(self, when: str) -> None:
        """Records an exit nobody asked for and starts the agent again."""
        if self.process is not None and self.process.poll() is not None:
            self.unexpected_exits.append({"when": when, "exit_status": self.process.returncode,
                                          "log_tail": self.log_tail(15)})
            log(f"agent exited on its own ({self.process.returncode}) {when}")
            self.children.forget(self.process)
            self.process = None
            self.start()


# ----------------------------------------------------------------------------- the run


@dataclass
class Recovery:
    """A moment after which the agent should deliver everything it had: a fault ended."""
    fault: str
    at: float


@dataclass
class Chaos:
    args: argparse.Namespace
    work: Path
    rng: random.Random
    agent: Agent = field(init=False, default=None)  # type: ignore[assignment] # set by setup()
    consumer: ConsumerProcess = field(init=False)
    faults: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    recoveries: list[Recovery] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    active: str | None = None
    kills: int = 0
    state_dir: Path = field(init=False)
    tmpfs: bool = False
    cgroup: str | None = None
    burner: subprocess.Popen[bytes] | None = None
    clock_file: Path | None = None

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        self.state_dir = self.work / "state"
        self.state_dir.mkdir()
        problem = self._mount_tmpfs()
        if problem:
            self.skipped["disk_full"] = problem
        try:
            self.consumer = ConsumerProcess(self.work)
        except ConsumerStartError as error:
            raise SetupError(str(error)) from None
        instances = self.work / "instances.d"
        instances.mkdir()
        problem = self._make_cgroup(instances)
        if problem:
            self.skipped["instance_cpu_check"] = problem
        faketime = self._faketime()
        config = configuration.write(self.work / "hostmeter.yaml", self.config())
        self.agent = Agent(self.args.binary, config, self.work, faketime)

    def config(self) -> dict[str, Any]:
        """The agent's configuration: 1 s samples and periods, the API on a port the kernel picks,
        shipping over HTTP to the consumer with short timeouts, retries and breaker."""
        return {
            "host_id": "chaos",
            "interval_seconds": 1,
            "sample_seconds": 1,
            "state_dir": str(self.state_dir),
            "instances_dir": str(self.work / "instances.d"),
            "api": {"listen": LISTEN_ANY_PORT},
            "sink": {"type": "http", "url": self.consumer.url, "timeout_seconds": 2, "connect_timeout_seconds": 1,
                     "batch_max_events": 20},
            "retry": {"base_seconds": 0.05, "cap_seconds": 1},
            "circuit_breaker": {"failure_threshold": 3, "open_seconds": 1},
            "gpu": {"enabled": False},
            # Verifiable usage: every delivered event is checked by its chain and signed commitments.
            "schema_version": "1.1",
            "commitments": {"max_events": 20, "max_seconds": 10},
        }

    def _mount_tmpfs(self) -> str | None:
        if os.geteuid() != 0:
            return "needs root to mount a tmpfs for the outbox"
        size = self.args.tmpfs_mib
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m,mode=0700", "hostmeter-chaos",
                                 str(self.state_dir)], capture_output=True, text=True)
        if result.returncode != 0:
            return f"mount -t tmpfs failed: {result.stderr.strip() or result.returncode}"
        self.tmpfs = True
        return None

    def _make_cgroup(self, instances: Path) -> str | None:
        mount = cgroup2_mount()
        if mount is None:
            return "no cgroup2 hierarchy is mounted"
        name = f"hostmeter-chaos-{os.getpid()}"
        path = os.path.join(mount, name)
        try:
            os.mkdir(path)
        except OSError as error:
            return f"cannot create a cgroup under {mount}: {error.strerror}"
        self.cgroup = path
        configuration.write(instances / "burner.yaml",
                            {"instance_id": "burner", "user_id": "chaos-user", "cgroup": name, "vcpus": 1})
        return None

    def _faketime(self) -> dict[str, str] | None:
        library = next((p for p in FAKETIME_LIBRARIES if os.path.exists(p)), None)
        if library is None:
            self.skipped["clock_step"] = "libfaketime is not installed (Debian package faketime)"
            return None
        self.clock_file = self.work / "faketime"
        self.clock_file.write_text("+0\n")
        # The offset file is read on every wall-clock call; the boot and monotonic clocks the agent
        # measures durations on are left alone, as a real step leaves them.
        return {"LD_PRELOAD": library, "FAKETIME_TIMESTAMP_FILE": str(self.clock_file),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def teardown(self, keep: bool) -> None:
        if self.agent is not None and self.agent.alive():
            self.agent.kill9()
        with contextlib.suppress(Exception):
            self.consumer.stop()
        self._stop_burner()
        if self.cgroup:
            # A cgroup counts as busy for a moment after its last process was reaped.
            def removed() -> bool:
                try:
                    os.rmdir(self.cgroup)  # type: ignore[arg-type]
                    return True
                except FileNotFoundError:
                    return True
                except OSError:
                    return False
            if not wait_until(removed, 5, 0.05):
                log(f"could not remove the cgroup {self.cgroup}")
        # The semaphore and shared memory libfaketime made for each agent process.
        for pid in self.agent.pids if self.agent is not None else []:
            for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
                with contextlib.suppress(OSError):
                    os.unlink(f"/dev/shm/{name}")
        if self.tmpfs:
            if keep:
                shutil.copytree(self.state_dir, self.work / "state-copy", ignore=shutil.ignore_patterns("filler"))
            subprocess.run(["umount", "-l", str(self.state_dir)], capture_output=True)

    # ------------------------------------------------------------------ the burner

    def _start_burner(self) -> None:
        assert self.cgroup
        # Stopped before exec so that all of its CPU time is spent inside the cgroup.
        # About a third of a core: a short busy loop, then a nap.
        loop = "while :; do i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 0.02; done"
        self.burner = subprocess.Popen(["/bin/sh", "-c", 'kill -STOP $$; exec /bin/sh -c "$0"', loop])
        wait_until(lambda: process_state(self.burner.pid) == "T", 5, 0.01)  # type: ignore[union-attr]
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write(f"{self.burner.pid}\n")
        os.kill(self.burner.pid, signal.SIGCONT)

    def _stop_burner(self) -> None:
        if self.burner is not None and self.burner.poll() is None:
            self.burner.kill()
            self.burner.wait()

    # ------------------------------------------------------------------ faults

    def fault(self, name: str) -> None:
        self.faults[name] = self.faults.get(name, 0) + 1

    def recovered(self, name: str) -> None:
        self.recoveries.append(Recovery(name, time.time()))

    def kill_and_restart(self) -> None:
        # A random moment inside the sampling second: before, during or after a sample's commit.
        time.sleep(self.rng.random())
        self.agent.kill9()
        self.kills += 1
        self.fault("kill9")
        time.sleep(self.rng.uniform(0, 2))
        self.agent.start()
        if self.active is None:
            # During another fault the agent cannot catch up before that fault ends.
            self.recovered("kill9")

    def hold(self, seconds: float, kill_probability: float = 0.0) -> None:
        """Lets `seconds` pass, maybe with a kill -9 somewhere in them."""
        end = time.monotonic() + seconds
        if kill_probability and self.rng.random() < kill_probability:
            time.sleep(self.rng.uniform(0, seconds))
            self.kill_and_restart()
        time.sleep(max(0.0, end - time.monotonic()))

    def consumer_fault(self, name: str, mode: str, hold: float, **parameters: Any) -> None:
        self.fault(name)
        self.consumer.mode(mode, **parameters)
        self.hold(hold, kill_probability=0.3)
        self.consumer.mode("ok")
        self.recovered(name)

    def outage(self) -> None:
        self.consumer_fault("consumer_outage", "refuse", self.rng.uniform(2, 8))

    def storm(self) -> None:
        status = self.rng.choice([500, 502, 503])
        extra = {"retry_after": "1"} if self.rng.random() < 0.5 else {}
        self.consumer_fault("status_storm", "status", self.rng.uniform(2, 6), status=status,
                            count=self.rng.randint(5, 30), **extra)

    def slow(self) -> None:
        # Under and over the agent's 2 s timeout: the second kind is resent.
        self.consumer_fault("slow", "slow", self.rng.uniform(2, 5), seconds=self.rng.uniform(0.5, 3),
                            count=self.rng.randint(2, 5))

    def hang(self) -> None:
        self.consumer_fault("hang", "hang", self.rng.uniform(3, 6), seconds=4, count=self.rng.randint(1, 3))

    def cut(self) -> None:
        self.consumer_fault("cut", "cut", self.rng.uniform(2, 4), reset=self.rng.random() < 0.5,
                            count=self.rng.randint(2, 6))

    def cut_after_store(self) -> None:
        self.consumer_fault("cut_after_store", "cut_after_store", self.rng.uniform(2, 4),
                            reset=self.rng.random() < 0.5, count=self.rng.randint(2, 6))

    def bad_reload(self) -> None:
        self.fault("sighup_bad_config")
        config = self.agent.config
        good = config.read_text()
        document = self.config()
        bad = self.rng.choice([
            configuration.render({**document, "interval_seconds": 0}),
            configuration.render({**document, "sink_typo": "http"}),
            configuration.render({**document, "sink": {**document["sink"], "type": "kafka"}}),
            "host_id: [unclosed\n",
        ])
        before = self.agent.log_since_start().count("configuration reload refused")
        config.write_text(bad)
        self.agent.signal(signal.SIGHUP)
        refused = wait_until(
            lambda: self.agent.log_since_start().count("configuration reload refused") > before, 10)
        alive = self.agent.alive()
        time.sleep(self.rng.uniform(1, 3))
        config.write_text(good)
        if not refused:
            self.failures.append("a SIGHUP with a bad configuration was not logged as refused")
        if not alive or not self.agent.alive():
            self.failures.append("the agent did not survive a SIGHUP with a bad configuration")
            self.agent.check_alive("after SIGHUP with a bad configuration")
        else:
            # The good file again: the agent reloads it (nothing changed) and runs on.
            self.agent.signal(signal.SIGHUP)
        self.recovered("sighup_bad_config")

    def disk_full(self) -> None:
        if not self.tmpfs:
            return
        self.fault("disk_full")
        # SQLite reuses its WAL file from the start after a checkpoint, so a full filesystem only
        # bites once the WAL must grow. Truncating it first (as any sqlite3 client may) makes the
        # agent's next commit need new blocks.
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(self.state_dir / "hostmeter.sqlite", timeout=5)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = self.state_dir / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            # Big pieces, then ever smaller ones, until not one byte more fits.
            piece = 1 << 20
            for _ in range(10_000):
                if piece == 0:
                    break
                try:
                    os.write(fd, b"\0" * piece)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    piece //= 2
        finally:
            os.close(fd)
        statvfs = os.statvfs(self.state_dir)
        log(f"outbox filesystem full ({statvfs.f_bavail} blocks left)")
        time.sleep(self.rng.uniform(3, 6))
        health: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            health = self.agent.get("/health")
        self.observations.append({"fault": "disk_full", "health_status": health.get("status"),
                                  "database_writable": health.get("database_writable")})
        self.agent.check_alive("while the outbox filesystem was full")
        filler.unlink()
        self.recovered("disk_full")

    def clock_step(self) -> None:
        if self.clock_file is None:
            return
        self.fault("clock_step")
        step = self.rng.randint(3, 10)
        self.clock_file.write_text(f"+{step}\n")
        self.hold(self.rng.uniform(2, 4), kill_probability=0.3)
        # Back to real time: a step back by the same amount.
        self.clock_file.write_text("+0\n")
        self.hold(step + 1, kill_probability=0.3)
        self.recovered("clock_step")

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        self.kernel_start = kernel_cpu_busy_ns()
        self.wall_start = time.time()
        self.agent.start()
        started = time.monotonic()
        if not wait_until(lambda: self.consumer.stats()["unique_events"] > 0, 30, 0.2):
            raise SetupError(f"no event reached the consumer within 30 s:\n{self.agent.log_tail()}")
        if self.cgroup:
            # The instance's baseline must come first: its cgroup is empty and counts 0 until then.
            baselined = wait_until(lambda: self._instance_baselined("burner"), 30, 0.2)
            if not baselined:
                raise SetupError(f"the burner instance was not baselined within 30 s:\n{self.agent.log_tail()}")
            self._start_burner()
        episodes: list[Callable[[], None]] = [
            self.kill_and_restart, self.outage, self.storm, self.slow, self.hang, self.cut,
            self.cut_after_store, self.bad_reload, self.disk_full, self.clock_step,
        ]
        if self.args.only:
            known = {episode.__name__ for episode in episodes}
            unknown = set(self.args.only) - known
            if unknown:
                raise SetupError(f"--only: no fault named {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(sorted(known))}")
            episodes = [episode for episode in episodes if episode.__name__ in self.args.only]
        deadline = started + self.args.seconds
        # Each kind of fault once in a random order, then random ones until the time is up.
        order = self.rng.sample(episodes, len(episodes))
        while order or time.monotonic() < deadline:
            episode = order.pop() if order else self.rng.choice(episodes)
            log(f"fault: {episode.__name__}")
            self.active = episode.__name__ if episode != self.kill_and_restart else None
            episode()
            self.active = None
            self.agent.check_alive(f"after {episode.__name__}")
            self.hold(self.rng.uniform(1, 3))
            self.agent.check_alive("between faults")
        log("faults over: consumer healthy, stopping the burner, draining")
        self.consumer.mode("ok")
        self._stop_burner()
        # Two more periods so the burner's last CPU time is in a closed period, then a full drain.
        time.sleep(2.5)
        self.agent.check_alive("at the end")
        self.recovered("end")
        end = self.recoveries[-1].at
        # New periods keep coming every second: drained means nothing from before the end is left.
        drained = wait_until(lambda: self._drained_before(end), 60, 0.2)
        if not drained:
            self.failures.append(f"the outbox did not drain within 60 s of the end: {self._outbox()}")
        status = self.agent.terminate()
        self.kernel_end = kernel_cpu_busy_ns()
        self.wall_end = time.time()
        if status != 0:
            self.failures.append(f"SIGTERM at the end: exit status {status}, not 0")
        self.elapsed = time.monotonic() - started
        return self.report()

    def _instance_baselined(self, instance_id: str) -> bool:
        with contextlib.suppress(Exception):
            view = self.agent.get("/get")
            for instance in view.get("instances") or []:
                if instance.get("instance_id") == instance_id and instance.get("running"):
                    return True
        return False

    def _outbox(self) -> dict[str, Any]:
        try:
            return self.agent.get("/outbox")
        except Exception as error:  # noqa: BLE001 - reported as is
            return {"error": str(error)}

    def _drained_before(self, moment: float) -> bool:
        outbox = self._outbox()
        oldest = outbox.get("oldest_pending_period_start")
        return outbox.get("pending_events") == 0 or (oldest is not None and oldest >= int(moment))

    # ------------------------------------------------------------------ the verdict

    def report(self) -> dict[str, Any]:
        stats = self.consumer.stats()
        received = self.consumer.received()
        by_instance: dict[str, list[tuple[str, dict[str, Any], float]]] = {}
        for event_id, event, first_seen, _ in received:
            if event.get("event_type") != "resource_usage":
                continue
            by_instance.setdefault(event["instance_id"], []).append((event_id, event, first_seen))

        state = self._agent_state()
        billing: dict[str, Any] = {}
        for instance_id, events in sorted(by_instance.items()):
            billing[instance_id] = self._periods(instance_id, events, state)
        billing.setdefault("chaos", {"events": 0})
        host = billing["chaos"]
        host.update(self._host_cpu(by_instance.get("chaos", []), state))
        if self.cgroup:
            billing.setdefault("burner", {"events": 0})
            billing["burner"].update(self._instance_cpu(by_instance.get("burner", []), state))

        if stats["conflicts"]:
            self.failures.append(f"{stats['conflicts']} event ids were delivered with two different bodies")
        if state["pending"] or state["dead_letters"]:
            self.failures.append(
                f"the outbox still holds {state['pending']} pending events and {state['dead_letters']} dead letters")
        if self.agent.unexpected_exits:
            self.failures.append(f"the agent exited on its own {len(self.agent.unexpected_exits)} times")

        delays = self._delays(received)
        verification = self._verify(received)
        return {
            "ok": not self.failures,
            "failures": self.failures,
            "mode": self.args.mode,
            "seed": self.args.seed,
            "seconds": round(self.elapsed, 1),
            "binary": str(self.args.binary),
            "kills": self.kills,
            "agent_starts": self.agent.starts,
            "unexpected_exits": self.agent.unexpected_exits,
            "faults": dict(sorted(self.faults.items())),
            "skipped": self.skipped,
            "events": {
                "unique": stats["unique_events"],
                "deliveries": stats["deliveries"],
                "duplicates_before_dedupe": stats["duplicates"],
                "conflicting_redeliveries": stats["conflicts"],
                "requests": stats["requests"],
                "requests_by_status": stats["by_status"],
                "by_instance": {k: len(v) for k, v in sorted(by_instance.items())},
            },
            "billing": billing,
            "verification": verification,
            "delivery": delays,
            "observations": self.observations,
            "disk_full_with_failed_commits": sum(1 for o in self.observations
                                                 if o["fault"] == "disk_full" and o["database_writable"] is False),
            "outbox_at_end": {"pending_events": state["pending"], "dead_letters": state["dead_letters"]},
        }

    def _agent_state(self) -> dict[str, Any]:
        """Checkpoints, baselines, gaps and outbox counts from the stopped agent's database."""
        path = self.state_dir / "hostmeter.sqlite"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            checkpoints = {row[0]: json.loads(row[1])
                           for row in db.execute("SELECT instance_id, state FROM checkpoints")}
            baselines: dict[str, list[dict[str, Any]]] = {}
            for instance_id, wall_ns, counters in db.execute(
                    "SELECT instance_id, wall_ns, counters FROM metering_baselines ORDER BY id"):
                baselines.setdefault(instance_id, []).append({"wall_ns": wall_ns, "counters": json.loads(counters)})
            gaps: dict[str, list[dict[str, Any]]] = {}
            for instance_id, reason, start, end, detail in db.execute(
                    "SELECT instance_id, reason, from_time, to_time, detail FROM metering_gaps ORDER BY id"):
                gaps.setdefault(instance_id, []).append({"reason": reason, "from": start, "to": end, "detail": detail})
            (pending,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
            (dead,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        return {"checkpoints": checkpoints, "baselines": baselines, "gaps": gaps, "pending": pending,
                "dead_letters": dead}

    def _verify(self, received: list[tuple[str, dict[str, Any], float, int]]) -> dict[str, Any]:
        """Every delivered event and commitment checked by `hostmeter verify` with the agent's key, and
        by the independent verifier, which must agree; a hole must be explained by a gap event in the
        instance's chain, as `_periods` requires it of the gaps the agent recorded."""
        delivered = self.work / "delivered.jsonl"
        with delivered.open("w", encoding="utf-8") as lines:
            for _, event, _, _ in sorted(received, key=lambda row: row[2]):
                lines.write(json.dumps(event) + "\n")
        identity = self.work / "identity.json"
        shown = subprocess.run([str(self.args.binary), "identity", "--config", str(self.agent.config)],
                               capture_output=True, text=True, timeout=30)
        if shown.returncode != 0:
            self.failures.append(f"hostmeter identity failed: {shown.stderr.strip()}")
            return {}
        identity.write_text(shown.stdout)
        checked = subprocess.run([str(self.args.binary), "verify", "--key", str(identity), str(delivered)],
                                 capture_output=True, text=True, timeout=120)
        try:
            summary = json.loads(checked.stdout)
        except ValueError:
            self.failures.append(
                f"hostmeter verify printed no summary (exit {checked.returncode}): {checked.stderr[:500]}")
            return {}
        verifier = usage_verify.Verifier(keys=dict([usage_verify.read_key(str(identity))]))
        for number, (_, event, _, _) in enumerate(sorted(received, key=lambda row: row[2]), start=1):
            verifier.add(event, f"{delivered}:{number}")
        independent = verifier.report()
        kinds: dict[str, int] = {}
        for problem in verifier.all_problems()[0]:
            kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
        if kinds:
            self.failures.append(f"delivered events do not verify: {dict(sorted(kinds.items()))} "
                                 f"(hostmeter verify: {checked.stderr.strip()[:300]})")
        for figure in ("problems", "commitments", "signatures_checked", "uncommitted_events"):
            if summary.get(figure) != independent.get(figure):
                self.failures.append(f"hostmeter verify and the independent verifier disagree on {figure}: "
                                     f"{summary.get(figure)} and {independent.get(figure)}")
        if not summary.get("commitments") or summary.get("signatures_checked") != summary.get("commitments"):
            self.failures.append(f"expected signed commitments, verified {summary.get('signatures_checked')} "
                                 f"of {summary.get('commitments')}")
        return {key: summary.get(key) for key in ("events", "commitments", "signatures_checked", "uncommitted_events",
                                                  "problems", "duplicates")} | {"problem_kinds": kinds}

    def _periods(self, instance_id: str, events: list[tuple[str, dict[str, Any], float]],
                 state: dict[str, Any]) -> dict[str, Any]:
        """Holes (lost usage) and overlaps (usage billed twice) between an instance's periods."""
        spans = sorted((e["period"]["start"], e["period"]["end"], event_id) for event_id, e, _ in events)
        holes, overlaps = [], []
        for (start0, end0, id0), (start1, end1, id1) in zip(spans, spans[1:], strict=False):
            if start1 < end0:
                overlaps.append({"first": [start0, end0, id0], "second": [start1, end1, id1]})
            elif start1 > end0:
                explained = any(g["from"] <= end0 and g["to"] >= start1 for g in state["gaps"].get(instance_id, []))
                if not explained:
                    holes.append({"from": end0, "to": start1})
        if holes:
            self.failures.append(f"{instance_id}: {len(holes)} holes between delivered periods (lost usage)")
        if overlaps:
            self.failures.append(f"{instance_id}: {len(overlaps)} overlapping periods (usage billed twice)")
        return {
            "events": len(events),
            "span": [spans[0][0], spans[-1][1]] if spans else None,
            "longest_period_seconds": max((end - start for start, end, _ in spans), default=0),
            "holes": holes[:10],
            "overlaps": overlaps[:10],
            "gaps_recorded": state["gaps"].get(instance_id, [])[:10],
            "baselines": len(state["baselines"].get(instance_id, [])),
        }

    @staticmethod
    def _unbilled_cpu_ns(checkpoint: dict[str, Any]) -> int:
        """CPU the agent holds but has not billed: the open period and the sub-second carry."""
        return int(checkpoint["period"]["usage"].get("cpu_ns", 0)) + int(checkpoint.get("cpu_carry_ns", 0))

    def _host_cpu(self, events: list[tuple[str, dict[str, Any], float]], state: dict[str, Any]) -> dict[str, Any]:
        checkpoint = state["checkpoints"].get("chaos")
        baselines = state["baselines"].get("chaos", [])
        if checkpoint is None or len(baselines) != 1:
            self.failures.append(f"host: expected one baseline and a checkpoint, found {len(baselines)} and "
                                 f"{'one' if checkpoint else 'none'}")
            return {}
        first_ns = int(baselines[0]["counters"]["cpu_ns:cpu"])
        last_ns = int(checkpoint["counters"]["cpu_ns:cpu"]["value"])
        billed_s = sum(e["metrics"]["cpu_seconds"] for _, e, _ in events)
        unbilled_ns = self._unbilled_cpu_ns(checkpoint)
        covered_ns = last_ns - first_ns
        lost_ns = covered_ns - billed_s * 1_000_000_000 - unbilled_ns
        # The agent's readings of the kernel counter at its first and last sample, against this
        # script's own readings just before the first start and just after the last stop: each
        # difference is real CPU time outside the covered span, so it is at least 0 and at most
        # what all CPUs could have done in the wall time between the two readings.
        before_ns = first_ns - self.kernel_start
        after_ns = self.kernel_end - last_ns
        first_wall = baselines[0]["wall_ns"] / 1e9
        last_wall = checkpoint["last_wall_ns"] / 1e9
        # /proc/stat moves in whole ticks per CPU, so a reading can lag by a tick on each CPU.
        slack = NCPU / USER_HZ + 0.01
        before_max = (first_wall - self.wall_start) * NCPU + slack
        after_max = (self.wall_end - last_wall) * NCPU + slack
        if lost_ns != 0:
            self.failures.append(f"host: {lost_ns / 1e9:+.9f} s of CPU between the agent's first and last sample "
                                 f"{'is not billed' if lost_ns > 0 else 'is billed twice'}")
        if not (0 <= before_ns <= before_max * 1e9) or not (0 <= after_ns <= after_max * 1e9):
            self.failures.append(
                f"host: the agent's kernel readings do not match /proc/stat: {before_ns / 1e9:.3f} s before its first "
                f"sample (at most {before_max:.3f}), {after_ns / 1e9:.3f} s after its last (at most {after_max:.3f})")
        return {
            "kernel_cpu_seconds": (self.kernel_end - self.kernel_start) / 1e9,
            "covered_cpu_seconds": covered_ns / 1e9,
            "billed_cpu_seconds": billed_s,
            "unbilled_open_and_carry_seconds": unbilled_ns / 1e9,
            "lost_seconds": lost_ns / 1e9,
            "outside_covered_span_seconds": {"before_first_sample": before_ns / 1e9,
                                             "after_last_sample": after_ns / 1e9},
        }

    def _instance_cpu(self, events: list[tuple[str, dict[str, Any], float]], state: dict[str, Any]) -> dict[str, Any]:
        assert self.cgroup
        kernel_ns = cgroup_usage_ns(self.cgroup)
        checkpoint = state["checkpoints"].get("burner")
        if checkpoint is None:
            self.failures.append("burner: no checkpoint after a clean stop")
            return {}
        billed_s = sum(e["metrics"]["cpu_seconds"] for _, e, _ in events)
        unbilled_ns = self._unbilled_cpu_ns(checkpoint)
        # usage_usec has microsecond resolution and the agent reads it the same way: exact.
        lost_ns = kernel_ns - billed_s * 1_000_000_000 - unbilled_ns
        if lost_ns != 0:
            self.failures.append(f"burner: {lost_ns / 1e9:+.6f} s of the cgroup's CPU "
                                 f"{'is not billed' if lost_ns > 0 else 'is billed twice'}")
        if billed_s < 1:
            self.failures.append("burner: nothing was billed; the instance check checked nothing")
        return {
            "kernel_cpu_seconds": kernel_ns / 1e9,
            "billed_cpu_seconds": billed_s,
            "unbilled_open_and_carry_seconds": unbilled_ns / 1e9,
            "lost_seconds": lost_ns / 1e9,
        }

    def _delays(self, received: list[tuple[str, dict[str, Any], float, int]]) -> dict[str, Any]:
        """After each recovery: how long until the last event that was due by then arrived."""
        arrivals = sorted((e["period"]["end"], first_seen) for _, e, first_seen, _ in received
                          if e.get("event_type") == "resource_usage")
        largest: dict[str, float] = {}
        for recovery in self.recoveries:
            if recovery.fault == "clock_step":
                continue  # periods are labelled on the agent's stepped clock there
            due = [first_seen for end, first_seen in arrivals if end <= recovery.at]
            delay = max(0.0, max(due, default=recovery.at) - recovery.at)
            largest[recovery.fault] = max(largest.get(recovery.fault, 0.0), round(delay, 3))
        return {
            "largest_delay_after_recovery_seconds": max(largest.values(), default=0.0),
            "largest_delay_after_recovery_by_fault": dict(sorted(largest.items())),
            "recoveries": len(self.recoveries),
        }


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, required=True, help="the hostmeter executable")
    parser.add_argument("--mode", default="short", help="a label for the report (short or long)")
    parser.add_argument("--seconds", type=float, default=120, help="how long faults are injected")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the time)")
    parser.add_argument("--tmpfs-mib", type=int, default=16, help="size of the outbox's tmpfs")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=None,
                        help="only these faults, by their method names, comma-separated (e.g. storm,outage)")
    args = parser.parse_args(argv)
    args.binary = args.binary.resolve()
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1_000_000_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(args.binary, os.X_OK):
        log(f"{args.binary}: not an executable")
        return 2
    work = Path(tempfile.mkdtemp(prefix="hostmeter-chaos."))
    log(f"seed {args.seed}, {args.seconds:.0f} s of faults, work folder {work}")
    chaos = Chaos(args, work, random.Random(args.seed))
    keep = args.keep
    try:
        # SIGTERM (a CI timeout) cleans up like Ctrl-C: mounts, cgroups and processes.
        signal.signal(signal.SIGTERM, _interrupt)
        chaos.setup()
        report = chaos.run()
        keep = keep or not report["ok"]
    except SetupError as error:
        log(f"set-up failed: {error}")
        keep = True
        return 2
    finally:
        chaos.teardown(keep)
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    if not report["ok"]:
        for failure in report["failures"]:
            log(f"FAILED: {failure}")
        return 1
    log(f"passed: {report['kills']} kills, {sum(report['faults'].values())} faults, "
        f"{report['events']['unique']} events, {report['events']['duplicates_before_dedupe']} duplicates before dedupe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
