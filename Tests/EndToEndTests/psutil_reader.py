"""Independent reader for the cross-check test: waits for a line on stdin, then prints what psutil
reads from this host at that moment as one JSON line. Mount points to stat come on that line."""
import json
import sys

import psutil

print("ready", flush=True)
mounts = json.loads(sys.stdin.readline())
memory = psutil.virtual_memory()
cpus = psutil.cpu_times(percpu=True)
nics = psutil.net_io_counters(pernic=True)
print(json.dumps({
    "memory_total": memory.total,
    "memory_used": memory.total - memory.available,
    "per_cpu": [{"user": c.user, "system": c.system, "idle": c.idle} for c in cpus],
    "network": {name: {"rx_bytes": n.bytes_recv, "tx_bytes": n.bytes_sent} for name, n in nics.items()},
    "filesystems": {m: psutil.disk_usage(m).used for m in mounts},
}), flush=True)
