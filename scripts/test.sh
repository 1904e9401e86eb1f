#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test
swift build --build-tests
swift test --skip-build "$@"
