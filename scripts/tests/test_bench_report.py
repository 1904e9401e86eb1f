"""The benchmark report's figures, computed from crafted /proc files and crafted tool output."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostmeter_tools import bench_peers, bench_proc, bench_report, bench_targets

PID = 4242


def stat_line(utime: int, stime: int, name: str = "host meter) (x") -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
    return f"{PID} ({name}) S 1 {PID} {PID} 0 -1 4194560 10 0 0 0 {utime} {stime} 0 0 20 0 5 0 100 1000 200\n"


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proc"
    (root / str(PID) / "task").mkdir(parents=True)
    monkeypatch.setattr(bench_proc, "PROC", root)
    return root


def sched(root: Path, tid: int, runtime_ms: float) -> None:
    task = root / str(PID) / "task" / str(tid)
    task.mkdir(exist_ok=True)
    (task / "sched").write_text(
        f"hostmeter ({tid}, #threads: 3)\n---\nse.exec_start : 1.0\n"
        f"se.sum_exec_runtime                          :          {runtime_ms:.6f}\n"
        "nr_switches : 10\n"
    )


def test_cpu_ticks_are_utime_plus_stime_past_a_name_with_parentheses(proc: Path) -> None:
    (proc / str(PID) / "stat").write_text(stat_line(1234, 56))
    assert bench_proc.cpu_ticks(PID) == 1290


def test_sched_runtime_is_summed_over_live_threads_in_ns(proc: Path) -> None:
    sched(proc, PID, 12.5)
    sched(proc, PID + 1, 0.25)
    (proc / str(PID) / "task" / str(PID + 2)).mkdir()  # a thread that exited between listing and reading
    assert bench_proc.cpu_sched_ns(PID) == 12_750_000


def test_cpu_clock_gives_the_difference_between_two_reads(proc: Path) -> None:
    (proc / str(PID) / "stat").write_text(stat_line(100, 50))
    sched(proc, PID, 1000.0)
    clock = bench_proc.CPUClock(PID)
    (proc / str(PID) / "stat").write_text(stat_line(130, 60))
    sched(proc, PID, 1401.5)
    since = clock.since()
    assert since["cpu_ms"] == pytest.approx(40 * 1000 / bench_proc.CLOCK_TICK)
    assert since["cpu_sched_live_threads_ms"] == 401.5
    assert since["cpu_resolution_ms"] == pytest.approx(1000 / bench_proc.CLOCK_TICK)


def test_memory_reads_the_status_fields_in_kb(proc: Path) -> None:
    (proc / str(PID) / "status").write_text(
        "Name:\thostmeter\nVmHWM:\t   30000 kB\nVmRSS:\t   25000 kB\nRssAnon:\t    9000 kB\n"
        "RssFile:\t   16000 kB\nRssShmem:\t       0 kB\nThreads:\t7\n"
    )
    assert bench_proc.memory(PID) == {
        "vm_hwm_kb": 30000,
        "vm_rss_kb": 25000,
        "rss_anon_kb": 9000,
        "rss_file_kb": 16000,
        "threads": 7,
    }


def test_loadavg_and_machine_read_their_files(proc: Path) -> None:
    (proc / "loadavg").write_text("0.50 1.25 2.00 3/400 12345\n")
    (proc / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU @ 3 GHz\n")
    (proc / "meminfo").write_text("MemTotal:       24000000 kB\nMemFree: 1 kB\n")
    assert bench_proc.loadavg() == [0.5, 1.25, 2.0]
    machine = bench_report.machine()
    assert (machine["cpu_model"], machine["memory_total_kb"]) == ("Test CPU @ 3 GHz", 24000000)


def test_metric_series_and_percentiles() -> None:
    body = (
        b"# HELP hostmeter_samples_total Samples.\n# TYPE hostmeter_samples_total counter\n"
        b"hostmeter_samples_total 42\nhostmeter_samples_total_other 1\n"
        b'hostmeter_periods_closed_total{} 7\nhostmeter_outbox_bytes{kind="x"} 9\n'
    )
    assert bench_report.metric(body, "hostmeter_samples_total") == 42
    assert bench_report.metric(body, "hostmeter_periods_closed_total") == 7
    assert bench_report.metric(body, "hostmeter_missing") is None
    assert bench_report.series_count(body) == 4
    values = [float(v) for v in range(1, 101)]
    assert (bench_report.percentile(values, 0.5), bench_report.percentile(values, 0.99)) == (51.0, 99.0)


@pytest.mark.parametrize(("text", "us"), [("812.00us", 812.0), ("1.50ms", 1500.0), ("2.00s", 2e6), ("1.5m", 9e7)])
def test_wrk_durations_in_microseconds(text: str, us: float) -> None:
    assert bench_peers.parse_duration_us(text) == us


def test_a_wrk_duration_it_does_not_know_is_an_error() -> None:
    with pytest.raises(ValueError):
        bench_peers.parse_duration_us("3h")


def crafted_report() -> dict:
    return {
        "settings": {"scrape_interval": 15},
        "host_sample": {"cpu": {"median_us": 50.0}},
        "agent": {
            "hour_equivalent": {"cpu_per_sample_us": 400.0},
            "metrics_scrape": {"cpu_per_scrape_us_less_samples": 300.0, "wall_median_us": 800.0},
            "memory_after_hour": {"vm_rss_kb": 20000, "rss_anon_kb": 5000, "rss_file_kb": 15000},
            "memory_at_rest": {"vm_rss_kb": 18000, "rss_anon_kb": 4000},
        },
        "node_exporter": {
            "metrics_scrape": {"cpu_per_scrape_us": 6000.0, "wall_median_us": 7000.0},
            "memory_after_scrapes": {"vm_rss_kb": 30000, "rss_anon_kb": 15000, "rss_file_kb": 15000},
            "memory_at_rest": {"vm_rss_kb": 27000, "rss_anon_kb": 0},
        },
        "production": {"node_exporter": {"cpu_ms_per_hour": 900.0}, "hostmeter": {"cpu_ms_per_hour": 0.0}},
    }


def test_ratios_are_node_exporter_over_hostmeter() -> None:
    result, rows = bench_targets.ratios(crafted_report())
    assert result["cpu_gather_host_us"] == {
        "node_exporter": 6000.0,
        "hostmeter": 400.0,
        "ratio": 15.0,
        "note": result["cpu_gather_host_us"]["note"],
    }
    assert result["cpu_gather_host_vs_collectors_us"]["ratio"] == 120.0
    assert result["cpu_metrics_scrape_us"]["ratio"] == 20.0
    assert result["scrape_wall_median_us"]["ratio"] == 8.75
    assert result["vm_rss_after_kb"]["ratio"] == 1.5
    assert result["rss_anon_after_kb"]["ratio"] == 3.0
    assert result["rss_anon_at_rest_kb"]["ratio"] == 0.0
    # A hostmeter figure of 0 has no ratio rather than a division error.
    assert result["cpu_production_ms_per_hour"]["ratio"] is None
    assert "15 s" in result["cpu_production_ms_per_hour"]["note"]
    assert len(rows) == 10 and rows[0] == ("CPU to gather the host once (µs)", 6000.0, 400.0)
