#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test
# Cheap and first: the Python tooling's lint and tests (scripts/hostmeter_tools), and the architecture
# check (Package.swift's module graph and every import against docs/ARCHITECTURE.md's table).
python3 -m ruff check scripts
python3 -m pytest -q scripts
PYTHONPATH=scripts python3 -m hostmeter_tools.archcheck
swift build --build-tests
# The API load tests (hundreds of connections, 64 clients hammering the API) measure the sampler's
# cadence and the answers' delays under that load: they run on their own, after the rest, so they
# neither slow the other tests' timed parts (CPU burners, kill tests) nor are slowed by them.
swift test --skip-build --skip APILoadTests "$@"
swift test --skip-build --filter APILoadTests "$@"
# The short chaos run (docs/RELIABILITY.md): about 2 minutes of kills and faults against the real
# agent and a loopback consumer. CHAOS=0 leaves it out of a quick local run.
[[ ${CHAOS:-1} == 0 ]] || scripts/chaos.sh short
# The Debian package, unit, alert rules and dashboard (a static release build: minutes the first
# time). PACKAGE_TEST=0 leaves it out of a quick local run.
[[ ${PACKAGE_TEST:-1} == 0 ]] || scripts/package-test.sh
