#!/usr/bin/env bash
# Compares hostmeter's integrated GPU utilization with nvidia-smi's over the same window.
#   scripts/gpu-check.sh [SECONDS] [INTERVAL]     default 20 s, looks every 1 s
# On a machine with an NVIDIA GPU: starts a GPU load when it can (PyTorch or CuPy with CUDA; a
# matrix-multiply loop busy GPU_DUTY of each second, default 0.5), records
#   nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used,power.draw --format=csv -lms 200
# beside `hostmeter-bench gpu`, and prints per GPU both means and their difference.
# Environment: GPU_CHECK_BENCH (a hostmeter-bench binary; a --static-swift-stdlib release build runs
# without a Swift toolchain; built here when unset), NVML_LIBRARY (default libnvidia-ml.so.1),
# NVIDIA_SMI (default nvidia-smi), GPU_LOAD=none (no load), GPU_DUTY (0 < duty <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
interval=${2:-1}
smi=${NVIDIA_SMI:-nvidia-smi}
library=${NVML_LIBRARY:-libnvidia-ml.so.1}
duty=${GPU_DUTY:-0.5}

if ! command -v "$smi" >/dev/null 2>&1; then
  echo "no NVIDIA GPU: $smi not found, nothing to check"
  exit 0
fi
if ! "$smi" -L >/dev/null 2>&1; then
  echo "no NVIDIA GPU: '$smi -L' failed, nothing to check"
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "gpu-check needs python3 to compare the readings" >&2; exit 1; }

bench=${GPU_CHECK_BENCH:-}
if [[ -z "$bench" ]]; then
  if command -v swift >/dev/null 2>&1; then
    swift build -c release --product hostmeter-bench --static-swift-stdlib --scratch-path .build-static >&2
    bench=.build-static/release/hostmeter-bench
  else
    echo "no hostmeter-bench binary and no Swift toolchain: set GPU_CHECK_BENCH to a release build" >&2
    exit 1
  fi
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$smi" -L | sed 's/^/found: /'

# The load: the first line it prints says what it is; it runs a little longer than the window.
load="none (GPU_LOAD=none)"
if [[ "${GPU_LOAD:-}" != "none" ]]; then
  python3 - "$seconds" "$duty" >"$work/load.out" 2>"$work/load.err" <<'PY' &
import sys, time
duration, duty = float(sys.argv[1]) + 10, float(sys.argv[2])
cycle = 1.0
def run(step, sync, count, what):
    print(f"{what} matrix multiply on {count} GPU(s), busy {duty:.0%} of each {cycle:g} s", flush=True)
    deadline = time.time() + duration
    while time.time() < deadline:
        start = time.time()
        while time.time() - start < duty * cycle:
            step()
            sync()
        rest = cycle - (time.time() - start)
        if rest > 0:
            time.sleep(rest)
try:
    import torch
    if not torch.cuda.is_available():
        raise ImportError("no CUDA in torch")
    devices = list(range(torch.cuda.device_count()))
    xs = [torch.randn(4096, 4096, device=f"cuda:{d}") for d in devices]
    def step():
        for x in xs:
            x @ x
    def sync():
        for d in devices:
            torch.cuda.synchronize(d)
    run(step, sync, len(devices), "PyTorch")
except ImportError:
    try:
        import cupy
        devices = list(range(cupy.cuda.runtime.getDeviceCount()))
        xs = []
        for d in devices:
            with cupy.cuda.Device(d):
                xs.append(cupy.random.rand(4096, 4096, dtype=cupy.float32))
        def step():
            for d, x in zip(devices, xs):
                with cupy.cuda.Device(d):
                    x @ x
        def sync():
            for d in devices:
                cupy.cuda.Device(d).synchronize()
        run(step, sync, len(devices), "CuPy")
    except ImportError:
        print("none", flush=True)
PY
  pids+=($!)
  for _ in $(seq 300); do [[ -s "$work/load.out" ]] && break; sleep 0.1; done
  load=$(head -n 1 "$work/load.out" 2>/dev/null || true)
  if [[ -z "$load" || "$load" == "none" ]]; then
    load="none: neither PyTorch nor CuPy with CUDA is installed, so this is an idle check"
    [[ -s "$work/load.err" ]] && load="$load ($(tail -n 1 "$work/load.err"))"
  else
    sleep 3  # let the load reach its steady state before the window opens
  fi
fi
echo "load: $load"

"$smi" --query-gpu=timestamp,index,utilization.gpu,memory.used,power.draw --format=csv,noheader,nounits -lms 200 \
  >"$work/smi.csv" 2>"$work/smi.err" &
pids+=($!)
sleep 0.5
status=0
"$bench" gpu --seconds "$seconds" --interval "$interval" --library "$library" >"$work/hostmeter.jsonl" || status=$?
kill "${pids[-1]}" 2>/dev/null || true
if [[ $status -ne 0 ]]; then
  echo "hostmeter-bench gpu failed (exit $status):" >&2
  cat "$work/hostmeter.jsonl" >&2
  exit 1
fi

python3 - "$work/hostmeter.jsonl" "$work/smi.csv" "$interval" <<'PY'
import csv, datetime, json, sys

hostmeter_path, smi_path, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
looks = [json.loads(line) for line in open(hostmeter_path) if line.strip()]
if not looks:
    sys.exit("hostmeter printed nothing")
window_start = looks[0]["timestamp"] - interval
window_end = looks[-1]["timestamp"]

smi = {}
for row in csv.reader(open(smi_path)):
    if len(row) < 5:
        continue
    try:
        when = datetime.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
        index = int(row[1])
    except ValueError:
        continue
    if not window_start <= when <= window_end:
        continue
    entry = smi.setdefault(index, {"util": [], "memory": [], "power": []})
    for key, text in (("util", row[2]), ("memory", row[3]), ("power", row[4])):
        try:
            entry[key].append(float(text))
        except ValueError:
            pass  # [N/A], [Not Supported]

def mean(values):
    return sum(values) / len(values) if values else None

def show(value, unit, places=1):
    return "n/a" if value is None else f"{value:.{places}f}{unit}"

print(f"window: {window_end - window_start:.1f} s, {len(looks)} hostmeter looks every {interval:g} s")
for gpu in looks[-1]["gpus"]:
    index = gpu["index"]
    readings = [g for look in looks for g in look["gpus"] if g["index"] == index]
    percents = [g["utilization_percent"] for g in readings if g["utilization_percent"] is not None]
    sources = sorted({g["utilization_source"] for g in readings if g["utilization_source"]})
    busy = [g["busy_ns"] for g in readings if g["busy_ns"] is not None]
    lost = any(g["lost"] for g in readings)
    errors = sorted({g["error"] for g in readings if g["error"]})
    integrated = None
    if len(busy) >= 2 and len(looks) >= 2:
        # Busy time between the first and the last line over the wall time between them.
        integrated = (busy[-1] - busy[0]) / 1e9 / (looks[-1]["timestamp"] - looks[0]["timestamp"]) * 100
    theirs = smi.get(index, {"util": [], "memory": [], "power": []})
    ours, reference = mean(percents), mean(theirs["util"])
    print(f"GPU {index} {gpu['uuid']} ({gpu['name']}), MIG {gpu['mig_mode'] or 'n/a'}")
    print(f"  hostmeter  : {show(ours, ' %')} mean of {len(percents)} integrated intervals"
          f" (source {', '.join(sources) or 'none'}); busy-time rate {show(integrated, ' %')}")
    print(f"  nvidia-smi : {show(reference, ' %')} mean of {len(theirs['util'])} readings;"
          f" memory {show(mean(theirs['memory']), ' MiB', 0)}, power {show(mean(theirs['power']), ' W')}")
    if ours is not None and reference is not None:
        print(f"  difference : {ours - reference:+.2f} percentage points (hostmeter - nvidia-smi)")
    else:
        print("  difference : n/a (no utilization from " + ("hostmeter" if ours is None else "nvidia-smi") + ")")
    if lost:
        print("  lost during the window")
    for error in errors:
        print(f"  error: {error}")
PY
