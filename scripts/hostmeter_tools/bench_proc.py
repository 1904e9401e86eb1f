"""What the benchmark report reads from /proc about the processes it measures and the host.

* CPU: utime + stime of the whole process (/proc/PID/stat, dead threads included, in clock ticks)
  and se.sum_exec_runtime summed over the live threads (/proc/PID/task/*/sched, ns).
* Memory: VmRSS, RssAnon, RssFile, VmHWM and Threads of /proc/PID/status.
* Wakeups: voluntary_ctxt_switches + nonvoluntary_ctxt_switches of every thread
  (/proc/PID/task/*/status). The kernel keeps a thread's counts only while the thread lives: the
  leader's /proc/PID/status shows the leader's own counts, not the process's, and the counts that
  getrusage(2) adds up for exited threads are not in /proc. ``SwitchCounter`` therefore reads the
  task list every ``poll`` seconds during a measurement and keeps each thread's last count, so a
  thread that exits loses only what it did since the last read (counted in ``threads_exited``).
* Mounts: the filesystems hostmeter's filesystem collector meters with its default selection, and
  the cgroup hierarchies of the host, both from /proc/self/mountinfo.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICK = os.sysconf("SC_CLK_TCK")

#: Where the readers below read (a folder of crafted files in the tests).
PROC = Path("/proc")


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (dead threads included), in clock ticks."""
    text = (PROC / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
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
    """VmRSS, RssAnon, RssFile, VmHWM (kB) and Threads of /proc/PID/status."""
    wanted = {
        "VmRSS": "vm_rss_kb",
        "RssAnon": "rss_anon_kb",
        "RssFile": "rss_file_kb",
        "VmHWM": "vm_hwm_kb",
        "Threads": "threads",
    }
    result = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            result[wanted[key]] = int(value.split()[0])
    return result


def loadavg() -> list[float]:
    return [float(value) for value in (PROC / "loadavg").read_text().split()[:3]]


# MARK: Context switches


def parse_switches(status_text: str) -> tuple[int, int]:
    """(voluntary, nonvoluntary) context switches of one /proc/.../status text; ValueError when
    either line is missing."""
    found: dict[str, int] = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            found[key] = int(value.split()[0])
    if len(found) != 2:
        raise ValueError("no voluntary_ctxt_switches and nonvoluntary_ctxt_switches lines")
    return found["voluntary_ctxt_switches"], found["nonvoluntary_ctxt_switches"]


def thread_switches(pid: int) -> dict[int, tuple[int, int]]:
    """Each live thread's (voluntary, nonvoluntary) context switches, by thread id."""
    result: dict[int, tuple[int, int]] = {}
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except FileNotFoundError:
        return result
    for task in tasks:
        try:
            result[int(task.name)] = parse_switches((task / "status").read_text())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # the thread exited between the listing and the read
    return result


class SwitchCounter:
    """Context switches of all threads of one process since ``start``, read by ``poll``.

    Threads alive at ``start`` count from their count then, threads born later from 0 (all of
    theirs fall in the window). A thread missing from a reading has exited: what it had at the
    reading before is kept. A count that went down is a new thread that reused an id: the old one
    is kept as exited and the new one counts from 0.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: tid → (baseline, last reading), each (voluntary, nonvoluntary).
        self.live: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
        self.exited = (0, 0)
        self.threads_seen = 0
        self.threads_exited = 0
        self.polls = 0

    def start(self) -> SwitchCounter:
        return self.begin(thread_switches(self.pid))

    def begin(self, now: dict[int, tuple[int, int]]) -> SwitchCounter:
        """Takes ``now`` (``thread_switches``'s result) as the baseline."""
        self.live = {tid: (counts, counts) for tid, counts in now.items()}
        self.threads_seen = len(now)
        return self

    def poll(self) -> None:
        """Reads every thread's counts again."""
        self.update(thread_switches(self.pid))

    def _retire(self, tid: int) -> None:
        base, last = self.live.pop(tid)
        self.exited = (self.exited[0] + last[0] - base[0], self.exited[1] + last[1] - base[1])
        self.threads_exited += 1

    def update(self, now: dict[int, tuple[int, int]]) -> None:
        """Takes one reading of the task list (``thread_switches``'s result)."""
        self.polls += 1
        for tid in [tid for tid in self.live if tid not in now]:
            self._retire(tid)
        for tid, counts in now.items():
            known = self.live.get(tid)
            if known is not None and counts[0] >= known[1][0] and counts[1] >= known[1][1]:
                self.live[tid] = (known[0], counts)
                continue
            if known is not None:
                self._retire(tid)
            self.live[tid] = ((0, 0), counts)
            self.threads_seen += 1

    def totals(self) -> dict:
        """Switches counted so far: voluntary, nonvoluntary, their sum, and the threads behind them."""
        voluntary, nonvoluntary = self.exited
        for base, last in self.live.values():
            voluntary += last[0] - base[0]
            nonvoluntary += last[1] - base[1]
        return {
            "voluntary": voluntary,
            "nonvoluntary": nonvoluntary,
            "context_switches": voluntary + nonvoluntary,
            "threads_seen": self.threads_seen,
            "threads_exited": self.threads_exited,
            "polls": self.polls,
        }


def wakeups(totals: dict, wall_s: float, sample_seconds: float | None = None) -> dict:
    """Context switches per hour over ``wall_s`` and, with ``sample_seconds``, per sample on average
    (samples = wall_s ÷ sample_seconds)."""
    result = {**totals, "per_hour": round(totals["context_switches"] * 3600 / wall_s, 1) if wall_s > 0 else None}
    if sample_seconds:
        samples = wall_s / sample_seconds
        result["samples_nominal"] = round(samples, 1)
        result["per_sample"] = round(totals["context_switches"] / samples, 2) if samples > 0 else None
    return result


# MARK: Mounts


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo (the fields the report needs)."""

    device: str
    root: str
    mount_point: str
    fs_type: str
    super_options: str


def unescape_mount(text: str) -> str:
    """mountinfo's octal escapes (\\040 for a space, \\011, \\012, \\134) undone."""
    out, index = [], 0
    while index < len(text):
        digits = text[index + 1 : index + 4]
        if text[index] == "\\" and len(digits) == 3 and all(digit in "01234567" for digit in digits):
            out.append(chr(int(text[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text, in table order; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        left, separator, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not separator or len(fields) < 5 or len(tail) < 3:
            continue
        mounts.append(Mount(fields[2], unescape_mount(fields[3]), unescape_mount(fields[4]), tail[0], tail[2]))
    return mounts


#: hostmeter's FilesystemSelection defaults (Sources/Probes/FilesystemCollector.swift).
EXCLUDED_FS_TYPES = frozenset(
    "autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs efivarfs fusectl hugetlbfs mqueue nsfs "
    "proc pstore ramfs rpc_pipefs securityfs selinuxfs sysfs tmpfs tracefs overlay squashfs iso9660 fuse.lxcfs "
    "fuse.gvfsd-fuse fuse.portal nfs nfs4 cifs smb3 ceph glusterfs fuse.sshfs 9p virtiofs".split()
)
EXCLUDED_MOUNT_POINTS = (
    "/proc/*",
    "/sys/*",
    "/dev/*",
    "/run/credentials/*",
    "/var/lib/docker/*",
    "/var/lib/containers/storage/*",
    "/var/lib/kubelet/pods/*",
)


def metered_filesystems(mounts: list[Mount]) -> list[str]:
    """The mount points hostmeter's filesystem collector stats with its default selection: types and
    mount points not excluded, each filesystem (major:minor) once, at its first mount."""
    seen: set[str] = set()
    chosen = []
    for mount in mounts:
        if mount.fs_type in EXCLUDED_FS_TYPES:
            continue
        if any(fnmatch.fnmatchcase(mount.mount_point, pattern) for pattern in EXCLUDED_MOUNT_POINTS):
            continue
        if mount.device in seen:
            continue
        seen.add(mount.device)
        chosen.append(mount.mount_point)
    return chosen


#: The cgroup hierarchies hostmeter's CgroupReader reads for an instance: cgroup2 (cpu.stat, and
#: memory and io where v1 does not have them) and the v1 cpuacct, memory and blkio controllers.
CGROUP_V1_CONTROLLERS = ("cpuacct", "memory", "blkio")


def cgroup_roots(mounts: list[Mount]) -> dict[str, str]:
    """Mount points of the hierarchies an instance's cgroup is read in: ``unified`` for cgroup2 and
    each of CGROUP_V1_CONTROLLERS mounted; a hierarchy's root mount wins over a subtree's, then the
    first in the table (as CgroupLayout.detect)."""
    roots: dict[str, str] = {}
    is_root: dict[str, bool] = {}

    def take(name: str, mount: Mount) -> None:
        whole = mount.root == "/"
        if name not in roots or (whole and not is_root[name]):
            roots[name] = mount.mount_point
            is_root[name] = whole

    for mount in mounts:
        if mount.fs_type == "cgroup2":
            take("unified", mount)
        elif mount.fs_type == "cgroup":
            for option in mount.super_options.split(","):
                if option in CGROUP_V1_CONTROLLERS:
                    take(option, mount)
    return roots
