#!/usr/bin/env bash
# Builds hostmeter and hostmeter-bench in release mode and prints their figures as JSON.
# BENCH_SCRATCH: the build folder to use instead of .build (e.g. .build-bench, .build-static).
#   scripts/bench.sh [report] (the default) one JSON report on stdout (also to the file BENCH_OUT when
#                             set), progress on stderr: host sample CPU, period close, outbox enqueue
#                             and drain (file and HTTP), 1,000 instances (v2, real cgroups and veths), /get with wrk, and a
#                             real `hostmeter run` at sample_seconds 1: RSS at rest and after an hour's
#                             periods (BENCH_HOUR_PERIODS, 120), CPU per sample and per /metrics
#                             scrape; then Debian's prometheus-node-exporter with the matching
#                             collectors on 127.0.0.1: CPU per scrape and RSS; and the ratios
#                             node_exporter ÷ hostmeter, also as a table on stderr; last, both side
#                             by side for 2 minutes at their production cadences (hostmeter's
#                             defaults, a scrape every 15 s): CPU per hour. Installs wrk,
#                             prometheus-node-exporter (its service is not used) and cloudevents.
#                             Other settings: scripts/bench_report.py
#   scripts/bench.sh sample   one full host sample
#   scripts/bench.sh period   closing a period, with and without its SQLite transaction
#   scripts/bench.sh outbox   enqueue rates, and the drain rate over HTTP to a loopback consumer
#                             (scripts/consumer.py, started here on 127.0.0.1)
#   scripts/bench.sh api [SECONDS]
#                             GET /get of a running agent (release build, loopback) with wrk, 8
#                             connections on 2 threads; prints requests/s, p50/p99 (µs) and the
#                             agent's memory (VmRSS, RssAnon, RssFile, kB) before and after
#   scripts/bench.sh instances [ARGS]
#                             1,000 VMs made of real kernel objects (a cgroup in each hierarchy read,
#                             a veth pair in a namespace of the bench's, a sparse image, a manifest
#                             each; `--kernel`, needs root) sampled, metered and stored per period:
#                             CPU per period against the 0.5 % target, µs per instance, and RssAnon
#                             per instance; as lines, for the v2 and the v1 cgroup layout (ARGS go to
#                             `hostmeter-bench instances`: --count, --periods, --layout for one layout
#                             only, --json; BENCH_TMPFS=1 reads generated files on tmpfs instead)
set -euo pipefail
# BENCH_OUT is named from where the script was started.
[[ -n "${BENCH_OUT:-}" ]] && BENCH_OUT=$(realpath -m -- "$BENCH_OUT") && export BENCH_OUT
cd "$(dirname "$0")/.."

scripts/deps.sh
scratch=${BENCH_SCRATCH:-.build}

if [[ "${1:-report}" == "report" ]]; then
  if (( $# )); then shift; fi
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  for package in wrk prometheus-node-exporter; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && continue
    echo "bench: installing $package" >&2
    # Where a policy-rc.d or the absence of systemd does not stop it, the package's own service
    # starts on :9100; the report starts and measures its own instance only.
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
      || { "${sudo_cmd[@]}" apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null; }
  done
  python3 -c 'import cloudevents' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check cloudevents
  swift build -c release --scratch-path "$scratch" --product hostmeter >&2
  swift build -c release --scratch-path "$scratch" --product hostmeter-bench >&2
  exec python3 scripts/bench_report.py --bin "$scratch/release" "$@"
fi
if [[ "${1:-}" == "api" ]]; then
  command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  swift build -c release --scratch-path "$scratch" --product hostmeter >&2
  exec python3 scripts/bench_report.py --bin "$scratch/release" --api "${2:-10}"
fi
if [[ "${1:-}" == "instances" ]]; then
  shift
  swift build -c release --scratch-path "$scratch" --product hostmeter-bench >&2
  kernel=(--kernel)
  [[ -n "${BENCH_TMPFS:-}" ]] && kernel=()
  if [[ " $* " == *" --layout "* ]]; then
    exec "$scratch/release/hostmeter-bench" instances "${kernel[@]}" "$@"
  fi
  for layout in v2 v1; do
    "$scratch/release/hostmeter-bench" instances "${kernel[@]}" --layout "$layout" "$@"
  done
  exit 0
fi
swift build -c release --scratch-path "$scratch" --product hostmeter-bench >&2
bench=$scratch/release/hostmeter-bench

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
