"""The chaos suite's verdict (hostmeter_tools.chaos) on made-up runs: it must pass a correct one and
name every kind of wrong one. scripts/chaos.sh runs these (scripts/chaos_selftest.py) before each
chaos run, so a verdict that could no longer fail stops the suite instead of passing it."""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import unittest
from pathlib import Path

from hostmeter_tools import chaos

NS = 1_000_000_000


def event(start: int, end: int, cpu: int) -> tuple[str, dict, float]:
    return (f"id-{start}-{end}", {"period": {"start": start, "end": end}, "metrics": {"cpu_seconds": cpu}}, float(end))


def checkpoint(counter_ns: int, open_ns: int, carry_ns: int, last_wall: float) -> dict:
    return {"counters": {"cpu_ns:cpu": {"value": counter_ns}}, "period": {"usage": {"cpu_ns": open_ns}},
            "cpu_carry_ns": carry_ns, "last_wall_ns": int(last_wall * NS)}


class VerdictTests(unittest.TestCase):
    def setUp(self) -> None:
        args = argparse.Namespace(mode="selftest", seed=0)
        self.work = Path(tempfile.mkdtemp(prefix="chaos-selftest."))
        self.run = chaos.Chaos(args, self.work, random.Random(0))
        # The script read /proc/stat at 100.0 s and 190.8 s of CPU; wall 1,000 to 1,010.
        self.run.kernel_start, self.run.kernel_end = 100 * NS, 190_800_000_000
        self.run.wall_start, self.run.wall_end = 1_000.0, 1_010.0

    def tearDown(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def state(self, billed_counter_end: int, open_ns: int, carry_ns: int) -> dict:
        return {"checkpoints": {"chaos": checkpoint(billed_counter_end, open_ns, carry_ns, 1_009.9)},
                "baselines": {"chaos": [{"wall_ns": int(1_000.1 * NS), "counters": {"cpu_ns:cpu": 100 * NS}}]},
                "gaps": {}, "pending": 0, "dead_letters": 0}

    def test_a_tiled_conserved_run_passes(self) -> None:
        events = [event(1_000, 1_001, 40), event(1_001, 1_005, 50)]
        self.run._periods("chaos", events, self.state(0, 0, 0))
        # 90 s billed + 0.5 s open + 0.25 s carry = the counter's growth from 100 s to 190.75 s.
        result = self.run._host_cpu(events, self.state(190 * NS + 750_000_000, 500_000_000, 250_000_000))
        self.assertEqual(self.run.failures, [])
        self.assertEqual(result["lost_seconds"], 0)

    def test_a_hole_is_lost_usage(self) -> None:
        self.run._periods("chaos", [event(1_000, 1_001, 1), event(1_003, 1_004, 1)], self.state(0, 0, 0))
        self.assertIn("holes", " ".join(self.run.failures))

    def test_a_recorded_gap_explains_a_hole(self) -> None:
        state = self.state(0, 0, 0)
        state["gaps"]["chaos"] = [{"reason": "reboot", "from": 1_001, "to": 1_003, "detail": ""}]
        self.run._periods("chaos", [event(1_000, 1_001, 1), event(1_003, 1_004, 1)], state)
        self.assertEqual(self.run.failures, [])

    def test_an_overlap_is_usage_billed_twice(self) -> None:
        self.run._periods("chaos", [event(1_000, 1_002, 1), event(1_001, 1_003, 1)], self.state(0, 0, 0))
        self.assertIn("overlapping", " ".join(self.run.failures))

    def test_unbilled_cpu_is_lost(self) -> None:
        self.run._host_cpu([event(1_000, 1_005, 89)], self.state(190 * NS + 750_000_000, 0, 0))
        self.assertEqual(len(self.run.failures), 1)
        self.assertIn("is not billed", self.run.failures[0])

    def test_cpu_billed_twice_is_named(self) -> None:
        self.run._host_cpu([event(1_000, 1_005, 91)], self.state(190 * NS + 750_000_000, 0, 0))
        self.assertEqual(len(self.run.failures), 1)
        self.assertIn("is billed twice", self.run.failures[0])

    def test_agent_readings_outside_the_scripts_are_refused(self) -> None:
        # The agent claims a counter past what the kernel had when the script read it after the stop.
        self.run._host_cpu([event(1_000, 1_005, 110)], self.state(210 * NS, 0, 0))
        self.assertIn("do not match /proc/stat", " ".join(self.run.failures))

    def test_instance_cpu_must_match_the_cgroup_exactly(self) -> None:
        cgroup = self.work / "cgroup"
        cgroup.mkdir()
        (cgroup / "cpu.stat").write_text("usage_usec 5000001\nuser_usec 5000000\nsystem_usec 1\n")
        self.run.cgroup = str(cgroup)
        state = {"checkpoints": {"burner": checkpoint(0, 0, 1_000, 0)}}
        self.run._instance_cpu([event(1_000, 1_005, 5)], state)
        self.assertEqual(self.run.failures, [])
        state["checkpoints"]["burner"]["cpu_carry_ns"] = 0
        self.run._instance_cpu([event(1_000, 1_005, 5)], state)
        self.assertIn("burner", " ".join(self.run.failures))
