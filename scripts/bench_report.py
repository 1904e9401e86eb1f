#!/usr/bin/env python3
"""The benchmark report (hostmeter_tools/bench_report.py), at the path scripts/bench.sh runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostmeter_tools.bench_report import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run())
