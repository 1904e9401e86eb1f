#!/usr/bin/env python3
"""The dashboard and alert-rule checker (hostmeter_tools/dashboards.py), at the path
scripts/package-test.sh runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostmeter_tools.dashboards import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
