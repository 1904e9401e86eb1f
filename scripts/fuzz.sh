#!/usr/bin/env bash
# Fuzzes the agent's parsers with libFuzzer (see fuzz/README.md): the /proc and /sys parsers of
# module Probes, the configuration loader, manifest files, and the API's JSON bodies.
#   scripts/fuzz.sh                 every target, SECONDS_PER_TARGET seconds each (default 60)
#   scripts/fuzz.sh stat config     those targets only
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

# The language settings of Package.swift's swiftSettings. -O keeps Swift's overflow and bounds
# checks; -g names source lines in reports. lld rather than gold: gold warns once per ASan helper
# symbol, hundreds of lines.
swift_settings=(-swift-version 6 -enable-upcoming-feature ExistentialAny -enable-upcoming-feature InternalImportsByDefault)
instrument=(-O -g -sanitize=fuzzer,address)

# stale OUTPUT INPUT...: whether OUTPUT is missing or older than an input.
stale() {
  local output=$1
  shift
  [[ ! -e $output || -n $(find "$@" -newer "$output" -print -quit) ]]
}

# probes-fuzz: Probes has no package dependencies, so plain swiftc builds its sources and the
# harness as one module (the harness reaches internal checks that way).
probes_binary=$build/probes-fuzz
probes_sources=(Sources/Probes/*.swift fuzz/common/*.swift fuzz/probes/*.swift)
if stale "$probes_binary" "${probes_sources[@]}"; then
  mkdir -p "$build"
  echo "building $probes_binary" >&2
  swiftc -parse-as-library -module-name ProbesFuzz "${swift_settings[@]}" "${instrument[@]}" -use-ld=lld \
    "${probes_sources[@]}" -o "$probes_binary.new"
  mv "$probes_binary.new" "$probes_binary"
fi

# agent-fuzz: the configuration, manifest and API decoders need Yams, and their modules need
# Hummingbird, GRDB and swift-crypto, which plain swiftc cannot build and a fuzz build need not
# link. So each module is compiled under its own name from just the files these functions live in
# (they import Foundation, Yams and each other only), and Yams from the checkout that Package.resolved
# pins, resolved into $build/packages; its C part, CYaml, is instrumented with clang. Files added
# to a list below must keep to those imports.
packages=$build/packages
yams=$packages/checkouts/Yams/Sources
if stale "$packages/resolved" Package.resolved || [[ ! -d $yams ]]; then
  echo "resolving packages into $packages" >&2
  swift package --scratch-path "$packages" resolve >&2
  touch "$packages/resolved"
fi
objects=$build/agent
modules=$objects/modules
cyaml=(-I "$yams/CYaml/include" -Xcc -DYAML_DECLARE_STATIC)
mkdir -p "$modules"

# module NAME "DEPENDENCIES" SOURCE...: compiles NAME into one object and its module interface
# when a source or a dependency's object is newer than its object.
module() {
  local name=$1 dependencies=$2
  shift 2
  local inputs=("$@") dependency
  for dependency in $dependencies; do inputs+=("$objects/$dependency.o"); done
  stale "$objects/$name.o" "${inputs[@]}" || return 0
  echo "building module $name" >&2
  local language=("${swift_settings[@]}" -enable-testing)
  [[ $name == Yams ]] && language=(-swift-version 6 -D SWIFT_PACKAGE)
  swiftc -parse-as-library -wmo -module-name "$name" "${language[@]}" "${instrument[@]}" -I "$modules" "${cyaml[@]}" \
    -emit-module -emit-module-path "$modules/$name.swiftmodule" -c "$@" -o "$objects/$name.o.new"
  mv "$objects/$name.o.new" "$objects/$name.o"
}

for source in "$yams"/CYaml/src/*.c; do
  object=$objects/cyaml-$(basename "$source" .c).o
  if stale "$object" "$source" "$yams"/CYaml/src/*.h "$yams"/CYaml/include/*.h; then
    clang -c -O1 -g -fsanitize=fuzzer-no-link,address -DYAML_DECLARE_STATIC -I "$yams/CYaml/include" \
      "$source" -o "$object"
  fi
done
module Yams "" "$yams"/Yams/*.swift
module Probes "" Sources/Probes/*.swift
module UsageModel "" Sources/UsageModel/UsageSchemaVersion.swift
module Metering "" Sources/Metering/{FieldKey,ThresholdRule,InstanceManifest,InstanceIdentity}.swift
module InputGuards "" Sources/InputGuards/YAMLGuard.swift
module RuntimeState "" Sources/RuntimeState/ManifestProblem.swift
module AgentAPI "Metering" \
  Sources/AgentAPI/{APILimits,APITLSFiles,ListenAddress,ThresholdRulesRequest,InstanceManifestRequest}.swift
module HostMeterAgent "Yams Probes UsageModel Metering AgentAPI InputGuards RuntimeState" \
  Sources/HostMeterAgent/{AgentConfiguration*,ConfigNode,ConfigurationKeys,ConfigurationError,InstanceDirectory,ManifestReader}.swift

agent_binary=$build/agent-fuzz
agent_sources=(fuzz/common/*.swift fuzz/agent/*.swift)
agent_objects=("$objects"/*.o)
if stale "$agent_binary" "${agent_sources[@]}" "${agent_objects[@]}"; then
  echo "building $agent_binary" >&2
  swiftc -parse-as-library -module-name AgentFuzz "${swift_settings[@]}" "${instrument[@]}" -use-ld=lld \
    -I "$modules" "${cyaml[@]}" "${agent_sources[@]}" "${agent_objects[@]}" -o "$agent_binary.new"
  mv "$agent_binary.new" "$agent_binary"
fi

# Each binary run under its own name lists its targets; run as fuzz-<target> it fuzzes that one.
declare -A binary_of=()
known=()
for binary in "$probes_binary" "$agent_binary"; do
  while read -r target; do
    if [[ -n ${binary_of[$target]:-} ]]; then
      echo "fuzz target '$target' is in both ${binary_of[$target]} and $binary" >&2
      exit 2
    fi
    binary_of[$target]=$binary
    known+=("$target")
  done < <("$binary")
done
if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${known[@]}"
  exit 0
fi
targets=("$@")
((${#targets[@]})) || targets=("${known[@]}")
for target in "${targets[@]}"; do
  if [[ -z ${binary_of[$target]:-} ]]; then
    echo "no fuzz target '$target'; known: ${known[*]}" >&2
    exit 2
  fi
  ln -sf "$(basename "${binary_of[$target]}")" "$build/fuzz-$target"
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
