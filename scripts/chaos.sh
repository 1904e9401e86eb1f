#!/usr/bin/env bash
# The chaos suite (docs/RELIABILITY.md): a real `hostmeter run` at a 1 s interval shipping to a real
# loopback consumer (scripts/consumer.py) while scripts/chaos.py (scripts/hostmeter_tools/chaos.py) kills it with SIGKILL, takes the
# consumer down, answers 5xx, slowly or not at all, cuts connections, sends SIGHUP with a bad
# configuration, fills the outbox's filesystem and steps the agent's wall clock. One JSON report on
# stdout; exit 1 if anything was lost or billed twice.
#
#   scripts/chaos.sh [short]   every fault at least once, then random ones until CHAOS_SECONDS (60)
#                              have passed: about 2 minutes on the debug build. Part of scripts/test.sh.
#   scripts/chaos.sh long      CHAOS_SECONDS (1800) of faults on the release build, then every fuzz
#                              target for SECONDS_PER_TARGET (60) seconds (scripts/fuzz.sh).
#
# Environment: CHAOS_SECONDS; CHAOS_SEED (replays a run: the report names its seed); CHAOS_REPORT, a
# file to write the report to as well; CHAOS_KEEP=1 keeps the work folder (kept anyway when the run
# fails); CHAOS_BINARY, a hostmeter executable already built, run instead of building one here. Faults that need root (the tmpfs, the cgroup) or libfaketime are
# skipped with the reason in the report's "skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
case $mode in
  short) seconds=${CHAOS_SECONDS:-60}; configuration=debug ;;
  long) seconds=${CHAOS_SECONDS:-1800}; configuration=release ;;
  *) echo "usage: scripts/chaos.sh [short|long]" >&2; exit 2 ;;
esac

scripts/deps.sh --test
if [[ -n ${CHAOS_BINARY:-} ]]; then
  binary=$CHAOS_BINARY
else
  swift build -c "$configuration" --product hostmeter >&2
  binary=$(swift build -c "$configuration" --show-bin-path)/hostmeter
fi

# The verdict first: a checker that can no longer fail would pass any run.
if ! verdict=$(python3 scripts/chaos_selftest.py 2>&1); then
  echo "$verdict" >&2
  echo "chaos: the verdict's self-test failed (scripts/chaos_selftest.py: scripts/tests/test_chaos_verdict.py)" >&2
  exit 1
fi

arguments=(--binary "$binary" --mode "$mode" --seconds "$seconds")
[[ -n ${CHAOS_SEED:-} ]] && arguments+=(--seed "$CHAOS_SEED")
[[ -n ${CHAOS_REPORT:-} ]] && arguments+=(--report "$CHAOS_REPORT")
[[ ${CHAOS_KEEP:-0} == 1 ]] && arguments+=(--keep)
python3 scripts/chaos.py "${arguments[@]}"

if [[ $mode == long ]]; then
  SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-60} scripts/fuzz.sh
fi
