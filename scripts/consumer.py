#!/usr/bin/env python3
"""The loopback billing consumer (hostmeter_tools/consumer.py), at the path the Swift tests,
scripts/bench.sh and scripts/consumer_selftest.sh start it by: same command line, same HTTP API."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostmeter_tools.consumer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
