#!/usr/bin/env bash
# Builds hostmeter-bench in release mode and prints its figures as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
swift build -c release --product hostmeter-bench >&2
exec .build/release/hostmeter-bench "$@"
