#!/usr/bin/env python3
"""Checks the chaos suite's verdict on made-up runs (scripts/tests/test_chaos_verdict.py, with
pytest): it must pass a correct run and name every kind of wrong one. scripts/chaos.sh runs this
before each chaos run, so a verdict that could no longer fail stops the suite instead of passing it."""

import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(here), "-c", str(here / "pyproject.toml"),
                          str(here / "tests" / "test_chaos_verdict.py")]))
