#!/usr/bin/env python3
"""The chaos run (hostmeter_tools/chaos.py), at the path scripts/chaos.sh and the docs name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostmeter_tools.chaos import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
