#!/usr/bin/env bash
# Fuzzes the /proc and /sys parsers of module Probes with libFuzzer (see fuzz/README.md).
#   scripts/fuzz.sh                 every target, SECONDS_PER_TARGET seconds each (default 60)
#   scripts/fuzz.sh stat meminfo    those targets only
#   scripts/fuzz.sh --list          the targets' names
# Environment: SECONDS_PER_TARGET; FUZZ_TIMEOUT, the seconds one input may take before it counts
# as a hang (default 10); FUZZ_ARGS, more libFuzzer flags; FUZZ_KEEP=1 keeps the scratch folder
# (grown corpora, logs) when nothing was found.
# Each target runs on a copy of its corpus in a scratch folder, so fuzz/corpus is never changed.
# Exits 1 when a target wrote a crash, timeout, leak or out-of-memory file (or libFuzzer failed
# without one), printing its path and the start of it in hex.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SECONDS_PER_TARGET:-60}
timeout=${FUZZ_TIMEOUT:-10}
build=.build-fuzz
binary=$build/probes-fuzz
sources=(Sources/Probes/*.swift fuzz/probes/*.swift)

# Probes has no package dependencies, so plain swiftc builds its sources and the harness as one
# module (the harness reaches internal checks that way) with the language settings of
# Package.swift's swiftSettings. -O keeps Swift's overflow and bounds checks; -g names source lines
# in reports. lld rather than gold: gold warns once per ASan helper symbol, hundreds of lines.
if [[ ! -x $binary || -n $(find "${sources[@]}" -newer "$binary") ]]; then
  mkdir -p "$build"
  echo "building $binary" >&2
  swiftc -parse-as-library -module-name ProbesFuzz \
    -swift-version 6 -enable-upcoming-feature ExistentialAny -enable-upcoming-feature InternalImportsByDefault \
    -O -g -sanitize=fuzzer,address -use-ld=lld \
    "${sources[@]}" -o "$binary.new"
  mv "$binary.new" "$binary"
fi

# The binary run under its own name lists its targets; run as fuzz-<target> it fuzzes that one.
mapfile -t known < <("$binary")
if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${known[@]}"
  exit 0
fi
targets=("$@")
((${#targets[@]})) || targets=("${known[@]}")
for target in "${targets[@]}"; do
  if ! printf '%s\n' "${known[@]}" | grep -qxF -- "$target"; then
    echo "no fuzz target '$target'; known: ${known[*]}" >&2
    exit 2
  fi
  ln -sf probes-fuzz "$build/fuzz-$target"
done

# Swift's own backtracer reads the crashed process's memory in a way ASan reports as a
# use-after-free, burying the real report: leave crash reports to libFuzzer and ASan.
export SWIFT_BACKTRACE=enable=no

scratch=$(mktemp -d "${TMPDIR:-/tmp}/hostmeter-fuzz.XXXXXX")
failed=0
shopt -s nullglob
printf '%-28s %12s %8s %6s %7s\n' target executions exec/s cov corpus
for target in "${targets[@]}"; do
  dir=$scratch/$target
  mkdir -p "$dir/corpus" "$dir/artifacts"
  [[ -d fuzz/corpus/$target ]] && cp -R "fuzz/corpus/$target/." "$dir/corpus/"
  args=(
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout="$timeout"
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1
  )
  [[ -f fuzz/dict/$target.dict ]] && args+=(-dict="fuzz/dict/$target.dict")
  status=0
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags.
  "$build/fuzz-$target" "${args[@]}" ${FUZZ_ARGS:-} "$dir/corpus" >"$dir/log" 2>&1 || status=$?

  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
  coverage=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2 || true)
  files=("$dir"/corpus/*)
  printf '%-28s %12s %8s %6s %7s\n' "$target" "${executions:--}" "${rate:--}" "${coverage:--}" "${#files[@]}"

  artifacts=("$dir"/artifacts/*)
  if ((${#artifacts[@]})); then
    failed=1
    grep -m 3 -E 'Fatal error|ERROR: |SUMMARY: ' "$dir/log" | sed 's/^/  /' || true
    for artifact in "${artifacts[@]}"; do
      echo "  $artifact ($(wc -c <"$artifact") bytes); reproduce: SWIFT_BACKTRACE=enable=no $build/fuzz-$target $artifact"
      od -A x -t x1z -v "$artifact" | head -n 8 | sed 's/^/    /'
    done
    echo "  log: $dir/log"
  elif ((status != 0)); then
    failed=1
    echo "  libFuzzer exited with $status and wrote no artifact; log: $dir/log"
    tail -n 20 "$dir/log" | sed 's/^/    /'
  fi
done

if ((failed)) || [[ ${FUZZ_KEEP:-0} == 1 ]]; then
  echo "scratch folder: $scratch" >&2
else
  rm -rf "$scratch"
fi
exit "$failed"
