"""The benchmark report's newer figures: wakeups, mounts, the C floor, nginx, targets and binaries,
from crafted /proc files, crafted tool output and (for the C floor) a real build of host_reader.c."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hostmeter_tools import bench_peers, bench_proc, bench_production, bench_report, bench_targets

PID = 4242


def status(voluntary: int, nonvoluntary: int) -> str:
    return (
        "Name:\thostmeter\nState:\tS (sleeping)\nThreads:\t3\nVmRSS:\t  20000 kB\n"
        f"voluntary_ctxt_switches:\t{voluntary}\nnonvoluntary_ctxt_switches:\t{nonvoluntary}\n"
    )


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proc"
    (root / str(PID) / "task").mkdir(parents=True)
    monkeypatch.setattr(bench_proc, "PROC", root)
    return root


def task(root: Path, tid: int, voluntary: int, nonvoluntary: int) -> None:
    folder = root / str(PID) / "task" / str(tid)
    folder.mkdir(exist_ok=True)
    (folder / "status").write_text(status(voluntary, nonvoluntary))


def test_switches_are_read_from_a_status_text() -> None:
    assert bench_proc.parse_switches(status(120, 7)) == (120, 7)
    with pytest.raises(ValueError):
        bench_proc.parse_switches("Name:\tx\nvoluntary_ctxt_switches:\t1\n")


def test_thread_switches_cover_every_task_and_skip_one_that_exited(proc: Path) -> None:
    task(proc, PID, 10, 1)
    task(proc, PID + 1, 5, 0)
    (proc / str(PID) / "task" / str(PID + 2)).mkdir()  # listed, gone before its status was read
    assert bench_proc.thread_switches(PID) == {PID: (10, 1), PID + 1: (5, 0)}
    assert bench_proc.thread_switches(PID + 99) == {}


def test_switch_counter_keeps_exited_threads_and_counts_new_ones_from_zero() -> None:
    counter = bench_proc.SwitchCounter(PID).begin({1: (100, 10), 2: (50, 5)})
    counter.update({1: (110, 12), 2: (60, 5), 3: (4, 1)})  # thread 3 born in the window
    counter.update({1: (115, 12), 3: (6, 1)})  # thread 2 exited after 10 voluntary switches
    totals = counter.totals()
    assert (totals["voluntary"], totals["nonvoluntary"]) == (15 + 10 + 6, 2 + 0 + 1)
    assert totals["context_switches"] == 34
    assert (totals["threads_seen"], totals["threads_exited"], totals["polls"]) == (3, 1, 2)


def test_a_reused_thread_id_is_a_new_thread() -> None:
    counter = bench_proc.SwitchCounter(PID).begin({7: (100, 0)})
    counter.update({7: (130, 2)})
    counter.update({7: (3, 0)})  # lower than before: thread 7 exited and a new one got its id
    totals = counter.totals()
    assert totals["context_switches"] == 30 + 2 + 3
    assert (totals["threads_seen"], totals["threads_exited"]) == (2, 1)


def test_wakeups_per_hour_and_per_sample() -> None:
    totals = {"context_switches": 360, "voluntary": 300, "nonvoluntary": 60}
    figures = bench_proc.wakeups(totals, 600.0, 5)
    assert figures["per_hour"] == 2160.0
    assert figures["samples_nominal"] == 120.0
    assert figures["per_sample"] == 3.0
    assert "per_sample" not in bench_proc.wakeups(totals, 600.0)


# The mount table of a build machine here: hybrid cgroups, a bind mount of / and a tmpfs.
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 0:25 / /mnt/tools ro,nosuid - tmpfs model_tools_unavailable ro,size=4k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
46 27 254:16 / /srv/data\\040disk rw - xfs /dev/vdb rw
47 27 254:32 / /var/lib/docker/overlay rw - xfs /dev/vdc rw
broken line
"""


def test_metered_filesystems_follow_hostmeters_default_selection() -> None:
    mounts = bench_proc.parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 14
    # tmpfs, proc, sysfs and cgroup types left out; /run/netns is / again (254:0); docker's is excluded.
    assert bench_proc.metered_filesystems(mounts) == ["/", "/srv/data disk"]


def test_cgroup_roots_of_a_hybrid_host() -> None:
    roots = bench_proc.cgroup_roots(bench_proc.parse_mountinfo(MOUNTINFO))
    assert roots == {
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "blkio": "/sys/fs/cgroup/blkio",
        "unified": "/sys/fs/cgroup/unified",
    }


def test_cgroup_roots_prefer_a_hierarchys_root_mount_and_read_joined_controllers() -> None:
    text = (
        "50 1 0:40 /machine.slice /mnt/sub rw - cgroup2 cgroup2 rw\n"
        "51 1 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
        "52 1 0:41 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    roots = bench_proc.cgroup_roots(bench_proc.parse_mountinfo(text))
    assert roots == {"unified": "/sys/fs/cgroup", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}


def test_mount_escapes_are_undone_and_a_lone_backslash_stays() -> None:
    assert bench_proc.unescape_mount("/a\\040b\\011c\\134d") == "/a b\tc\\d"
    assert bench_proc.unescape_mount("/x\\09") == "/x\\09"


def test_interface_names_fit_ifnamsiz_and_differ_per_vm() -> None:
    names = {bench_production.interface_name(4_194_303, index) for index in range(1000)}
    assert len(names) == 1000
    assert max(len(name) for name in names) <= 15
    manifest = bench_production.manifest(3, "hostmeter-report-1/vm-00003", "hm00001v3", "/tmp/vm.img")
    assert manifest["instance_id"] == "vm-00003" and manifest["interfaces"] == ["hm00001v3"]
    with pytest.raises(ValueError):
        bench_production.VMFixture(Path("/nonexistent"), 0)


def test_per_hour_scales_both_cpu_figures() -> None:
    figures = bench_production.per_hour(
        {"cpu_ms": 20.0, "cpu_sched_live_threads_ms": 18.0, "wall_s": 600.0, "cpu_resolution_ms": 10.0}
    )
    assert (figures["cpu_ms_per_hour"], figures["cpu_ticks_ms_per_hour"]) == (108.0, 120.0)
    assert figures["percent_of_one_core"] == 0.003


WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/get
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   410.12us  200.00us   5.00ms   90.00%
  Latency Distribution
     50%  380.00us
     75%  450.00us
     90%  600.00us
     99%    1.20ms
  187000 requests in 10.00s, 250.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  18700.00
Transfer/sec:     25.00MB
"""


def test_wrk_figures() -> None:
    figures = bench_peers.wrk_figures(WRK_OUTPUT)
    assert figures["requests"] == 187000
    assert figures["requests_per_second"] == 18700.0
    assert (figures["p50_us"], figures["p99_us"]) == (380.0, 1200.0)
    assert (figures["non_2xx"], figures["socket_errors"]) == (3, None)


def test_nginx_config_stays_on_loopback_in_its_folder() -> None:
    text = bench_peers.nginx_config(Path("/tmp/x/nginx"), 31337, 2)
    assert "listen 127.0.0.1:31337;" in text
    assert "worker_processes 2;" in text and "daemon off;" in text
    assert "pid /tmp/x/nginx/nginx.pid;" in text and "access_log off;" in text
    assert all(line.split()[1].startswith("/tmp/x/nginx") for line in text.splitlines() if "_temp_path" in line)


def test_floor_arguments() -> None:
    arguments = bench_peers.floor_arguments(Path("/w/host_reader"), 50, ("/proc/stat", "/proc/uptime"), ["/"])
    assert arguments == ["/w/host_reader", "-n", "50", "-f", "/proc/stat", "-f", "/proc/uptime", "-s", "/"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_host_reader_builds_and_reads_the_host_sample_files(tmp_path: Path) -> None:
    binary, version = bench_peers.compile_host_reader(tmp_path)
    assert "gcc" in version.lower()
    arguments = bench_peers.floor_arguments(binary, 20, bench_peers.HOST_SAMPLE_FILES, ["/"])
    shown = subprocess.run([*arguments, "-w", "2"], capture_output=True, text=True, timeout=60, check=True)
    figures = json.loads(shown.stdout)
    assert (figures["iterations"], figures["files"], figures["statvfs"]) == (20, 7, 1)
    for mode in ("pread_kept", "pread_kept_once", "open_read_close"):
        cpu = figures["modes"][mode]["cpu"]
        assert 0 < cpu["min_us"] <= cpu["median_us"] <= cpu["p99_us"]
        assert figures["modes"][mode]["bytes_per_pass"] > 100
    missing = subprocess.run([str(binary), "-n", "1", "-f", str(tmp_path / "absent")], capture_output=True, timeout=60)
    assert missing.returncode == 1 and b"absent" in missing.stderr
    assert subprocess.run([str(binary), "-n", "0", "-f", "/proc/stat"], capture_output=True, timeout=60).returncode == 2


def report_for_targets() -> dict:
    return {
        "settings": {"scrape_interval": 15},
        "production": {
            "seconds": 600,
            "cpu_ratio_node_exporter_over_hostmeter": 2.5,
            "hostmeter": {"cpu_ms_per_hour": 500.0, "wakeups": {"per_sample": 3.4, "per_hour": 2448.0}},
            "node_exporter": {"cpu_ms_per_hour": 1250.0, "wakeups": {"per_hour": 900.0}},
        },
        "host_floor": {"hostmeter_over_floor": 1.5, "hostmeter_host_sample_median_us": 45.0, "floor_us": 30.0},
        "agent": {
            "memory_at_rest": {"vm_rss_kb": 18000, "rss_anon_kb": 3000},
            "memory_after_hour": {"vm_rss_kb": 20001, "rss_anon_kb": 4000, "rss_file_kb": 16001},
        },
        "get_vs_nginx": {
            "hostmeter_over_nginx": 0.61,
            "body_bytes": 2048,
            "hostmeter": {"requests_per_second": 30500.0, "p50_us": 200.0, "p99_us": 999.0},
            "nginx": {"requests_per_second": 50000.0, "p50_us": 150.0, "p99_us": 700.0},
        },
        "outbox_depth": {
            "sample_commit_deep_over_empty": 1.04,
            "shipper_step_deep_over_empty": 1.2,
            "empty": {"sample_commit_cpu_us": 100.0, "shipper_step_cpu_us": 5000.0},
            "deep": {"pending": 300000, "sample_commit_cpu_us": 104.0, "shipper_step_cpu_us": 6000.0},
        },
    }


def test_targets_in_the_issues_order_with_their_verdicts() -> None:
    rows = bench_targets.targets(report_for_targets())
    verdicts = [(row.figure, row.value, row.verdict) for row in rows]
    assert verdicts == [
        ("CPU per hour, node_exporter ÷ hostmeter", 2.5, "PASS"),
        ("wakeups per sample at rest (hostmeter)", 3.4, "MISS"),
        ("host sample ÷ C floor", 1.5, "PASS"),
        ("VmRSS after an hour's periods (MB)", 20.0, "PASS"),  # 20,001 kB rounds to 20.0 MB
        ("RssAnon after an hour's periods (MB)", 4.0, "PASS"),
        ("1,000 VMs, % of one core", None, "NOT RUN"),
        ("GET /get ÷ nginx, requests/s", 0.61, "PASS"),
        ("GET /get p99 (ms)", 0.999, "PASS"),
        ("sample commit, deep ÷ empty outbox", 1.04, "PASS"),
        ("shipper step, deep ÷ empty outbox", 1.2, "MISS"),
    ]
    table = bench_targets.format_targets(rows)
    assert "NOT RUN" in table and "MISS" in table and ">= 2" in table and "< 0.5" in table
    assert rows[0].as_dict()["target"] == ">= 2"


def test_a_target_held_strictly_misses_at_its_limit() -> None:
    assert bench_targets.Target("p99", 1.0, "<", 1).verdict == "MISS"
    assert bench_targets.Target("ratio", 1.99, ">=", 2).verdict == "MISS"


def test_ratio_rows_leave_out_sections_not_run() -> None:
    result, rows = bench_targets.ratios({"production": report_for_targets()["production"]})
    assert [label for label, _, _ in rows] == [
        "CPU per hour, production cadence (ms)",
        "wakeups per hour, production cadence",
    ]
    assert result["cpu_production_ms_per_hour"]["ratio"] == 2.5
    assert result["wakeups_production_per_hour"]["ratio"] == 0.37
    assert "production cadence" in bench_targets.format_table(rows)


READELF = """
Dynamic section at offset 0x6b0e2d8 contains 33 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libsqlite3.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libswiftCore.so]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000c (INIT)               0x5b000
"""


def test_needed_libraries_and_the_description_of_a_binary() -> None:
    assert bench_targets.needed_libraries(READELF) == ["libsqlite3.so.0", "libswiftCore.so", "libc.so.6"]
    info = {"path": "/b/hostmeter", "bytes": 61_500_000, "static_swift_stdlib": True, "needed": ["libc.so.6"]}
    assert bench_targets.describe_binary("hostmeter", info) == (
        "hostmeter: /b/hostmeter, 61.5 MB, static Swift stdlib, 1 shared libraries"
    )


def test_binary_info_reads_a_real_elf_file() -> None:
    if shutil.which("readelf") is None:
        pytest.skip("needs readelf")
    info = bench_targets.binary_info(Path("/bin/ls"))
    assert info["static_swift_stdlib"] is True and "libc.so.6" in info["needed"] and info["bytes"] > 0


def test_only_names_sections_in_the_run_order() -> None:
    assert bench_report.parse_only(None) == list(bench_report.SECTIONS)
    assert bench_report.parse_only("nginx, floor") == ["floor", "nginx"]
    with pytest.raises(ValueError, match="wrong"):
        bench_report.parse_only("floor,wrong")
    with pytest.raises(ValueError):
        bench_report.parse_only(",")
