#!/usr/bin/env bash
# The main job on a working default: installs build dependencies, builds, and samples this host
# twice a second apart, printing the counters and the rates between them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
swift build -c release --product hostmeter
exec .build/release/hostmeter sample --interval 1 --pretty "$@"
