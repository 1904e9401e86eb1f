#!/usr/bin/env bash
# Builds hostmeter and hostmeter-bench in release mode and prints their figures as JSON.
# BENCH_SCRATCH: the build folder to use (default .build, and .build-static for `report`).
#   scripts/bench.sh [report] [--only SECTION[,SECTION]]
#                             (the default) builds hostmeter and hostmeter-bench with
#                             --static-swift-stdlib, as the Debian package ships them (scratch
#                             .build-static unless BENCH_SCRATCH is set), and prints one JSON report on
#                             stdout (also to the file BENCH_OUT when set), progress on stderr, with
#                             the binaries measured (path, size, static or not): host sample CPU,
#                             period close, outbox enqueue and drain (file and HTTP), 1,000 instances
#                             (v2, on real cgroups and veths: --kernel); the C floor for a host sample
#                             (scripts/bench/host_reader.c, built with gcc -O2 at run time: the same
#                             files read with kept descriptors and pread, and with open/read/close); a real `hostmeter run` at
#                             sample_seconds 1: RSS at rest and after an hour's periods
#                             (BENCH_HOUR_PERIODS, 120), CPU per sample and per /metrics scrape, /get
#                             with wrk; Debian's prometheus-node-exporter with the matching collectors
#                             on 127.0.0.1: CPU per scrape and RSS; /get beside Debian's nginx serving
#                             a file of the same bytes on 127.0.0.1 (wrk -t2 -c8, BENCH_WRK_SECONDS
#                             each); then both side by side at their production cadences (hostmeter's
#                             defaults, a scrape every 15 s) for BENCH_PRODUCTION_SECONDS (600): CPU
#                             per hour, wakeups (context switches of all threads) per hour and per
#                             sample, VmRSS/RssAnon/RssFile at the end; and again for
#                             BENCH_PRODUCTION_VM_SECONDS (600) with BENCH_PRODUCTION_VMS (100) VMs
#                             registered on real cgroups (mkdir) and veth pairs (host end down, no
#                             address, peer in a network namespace the bench made), all removed after.
#                             Last, the ratios node_exporter ÷ hostmeter and issue 18's targets with
#                             PASS/MISS, as tables on stderr. --only runs some sections: sample,
#                             period, outbox, instances, floor, agent, node_exporter, nginx,
#                             production, production_vms. Installs wrk, prometheus-node-exporter,
#                             nginx-light (their services are not used) and cloudevents. Other
#                             settings: scripts/hostmeter_tools/bench_report.py
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

if [[ "${1:-report}" == "report" || "${1:-}" == --* ]]; then
  [[ "${1:-}" == "report" ]] && shift
  scratch=${BENCH_SCRATCH:-.build-static}
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  # Debian starts a package's service on install unless policy-rc.d refuses: nginx would listen on
  # every address's port 80. Where there is none, one that refuses is put in place for the install.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# hostmeter bench: no service starts while it installs packages\nexit 101\n' \
      | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod 755 "$policy"
    made_policy=1
    trap '[[ -n "$made_policy" ]] && "${sudo_cmd[@]}" rm -f "$policy"' EXIT
  fi
  for package in wrk prometheus-node-exporter nginx-light gcc nats-server; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && continue
    echo "bench: installing $package" >&2
    # The packages' own services (node_exporter on :9100, nginx on :80) are not started (policy-rc.d
    # above); the report starts and measures instances of its own on 127.0.0.1 only.
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
      || { "${sudo_cmd[@]}" apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null; }
  done
  if [[ -n "$made_policy" ]]; then "${sudo_cmd[@]}" rm -f "$policy"; made_policy=; fi
  python3 -c 'import cloudevents' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check cloudevents
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product hostmeter >&2
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product hostmeter-bench >&2
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
