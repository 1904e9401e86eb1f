#!/usr/bin/env bash
# The main job: installs build dependencies, builds a release binary and runs the agent from the
# repository root with config/hostmeter.local.yaml — state and events under ./state, the API on
# 127.0.0.1:9780. Ctrl-C (SIGINT) or SIGTERM stores the last sample, drains the outbox to the file
# sink and exits 0. Extra arguments go to `hostmeter run`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
swift build -c release --product hostmeter
exec .build/release/hostmeter run --config config/hostmeter.local.yaml "$@"
