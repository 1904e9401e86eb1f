#!/usr/bin/env bash
# Builds hostmeter-bench in release mode and prints its figures as JSON.
#   scripts/bench.sh sample   one full host sample
#   scripts/bench.sh period   closing a period, with and without its SQLite transaction
#   scripts/bench.sh outbox   enqueue rates, and the drain rate over HTTP to a loopback consumer
#                             (scripts/consumer.py, started here on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
swift build -c release --product hostmeter-bench >&2
bench=.build/release/hostmeter-bench

if [[ "${1:-}" == "outbox" && " $* " != *" --consumer-url "* ]]; then
  python3 -c 'import cloudevents' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check cloudevents
  work=$(mktemp -d)
  python3 scripts/consumer.py --db "$work/consumer.sqlite" --port-file "$work/ports.json" --quiet >/dev/null 2>&1 &
  consumer=$!
  trap 'kill "$consumer" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 50); do [[ -s "$work/ports.json" ]] && break; sleep 0.1; done
  port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' "$work/ports.json")
  "$bench" "$@" --consumer-url "http://127.0.0.1:$port/events"
else
  exec "$bench" "$@"
fi
