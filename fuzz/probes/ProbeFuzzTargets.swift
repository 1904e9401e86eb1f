/// A path that no real file has, so an error message can be told apart from one about a real file.
private let fuzzPath = "/fuzz/input"

/// Runs `body`, accepting a `ProbeError` as the answer; its message is built, as a log line would.
private func parseOrRefuse(_ body: () throws(ProbeError) -> Void) {
    do {
        try body()
    } catch {
        check(!error.description.isEmpty, "an error without a message")
    }
}

/// The fuzz targets of module Probes: one per parser of a /proc or /sys file, and one per check
/// of a name that a configuration or the API hands to a probe.
///
/// Each target feeds the fuzzer's bytes to one pure parser. A thrown `ProbeError` is the expected
/// answer to broken input; a trap (overflow, index out of range, a failed `check` below), a
/// sanitizer report or a hang is a bug. The checks state what callers rely on when a parse
/// succeeds, so a parser that accepts nonsense and returns an impossible value is caught too.
///
/// This file and fuzz/common are compiled together with Sources/Probes into one module (see
/// scripts/fuzz.sh), so they can reach the internal checks (`CgroupReader.normalize`,
/// `DiskSelection.looksLikePartition`).
enum FuzzTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "stat") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let stat = try Stat.parse(bytes, userHZ: 100, path: fuzzPath)
                check(stat.cpuCount > 0, "a /proc/stat without cpuN lines was accepted")
                for cpu in [stat.total] + stat.perCPU.map(\.ticks) {
                    _ = stat.seconds(cpu.total)
                    check(cpu.modes.count == CPUTicks.modeNames.count)
                }
            }
        },
        FuzzTarget(name: "meminfo") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let meminfo = try Meminfo.parse(bytes, path: fuzzPath)
                check(meminfo["MemTotal"] != nil, "a meminfo without MemTotal was accepted")
                check(meminfo.availableBytes <= meminfo.totalBytes)
                check(meminfo.usedBytes <= meminfo.totalBytes)
                check((0...100).contains(meminfo.usedPercent), "usedPercent \(meminfo.usedPercent)")
            }
        },
        FuzzTarget(name: "diskstats") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                for disk in try Diskstats.parse(bytes, path: fuzzPath) {
                    _ = disk.bytesRead &+ disk.bytesWritten
                    // Flush columns come after the discard columns: never one without the other.
                    check(disk.flushesCompleted == nil || disk.discardsCompleted != nil)
                }
            }
        },
        FuzzTarget(name: "net_dev") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                for interface in try NetDev.parse(bytes, path: fuzzPath) {
                    check(!interface.name.isEmpty, "an interface without a name was accepted")
                }
            }
        },
        FuzzTarget(name: "loadavg") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let load = try LoadAvg.parse(bytes, path: fuzzPath)
                for value in [load.load1, load.load5, load.load15] {
                    check(value.isFinite && value >= 0, "load average \(value)")
                }
                check(load.running >= 0 && load.total >= 0 && load.lastPID >= 0)
            }
        },
        FuzzTarget(name: "uptime") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let uptime = try Uptime.parse(bytes, path: fuzzPath)
                check(uptime.uptimeSeconds.isFinite && uptime.uptimeSeconds >= 0)
                check(uptime.idleSeconds.isFinite && uptime.idleSeconds >= 0)
            }
        },
        FuzzTarget(name: "boot_id") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let id = try BootID.parse(bytes, path: fuzzPath)
                check(id.utf8.count == 36 && id == id.lowercased(), "boot id '\(id)'")
            }
        },
        FuzzTarget(name: "mountinfo") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let mounts = try Mountinfo.parse(bytes, path: fuzzPath)
                check(!mounts.isEmpty, "an empty mount table was accepted")
                // What the agent does next with the table: find the cgroup hierarchies in it.
                _ = CgroupLayout.detect(mounts).kind
            }
        },
        FuzzTarget(name: "cgroup_cpu_stat") { bytes in
            parseOrRefuse { () throws(ProbeError) in
                let nanos = try CgroupFiles.parseCPUStat(bytes, path: fuzzPath)
                check(nanos % 1000 == 0, "usage_usec in nanoseconds is a multiple of 1000")
            }
        },
        FuzzTarget(name: "cgroup_io_stat") { bytes in
            parseOrRefuse { () throws(ProbeError) in _ = try CgroupFiles.parseIOStat(bytes, path: fuzzPath) }
        },
        FuzzTarget(name: "cgroup_blkio_service_bytes") { bytes in
            parseOrRefuse { () throws(ProbeError) in _ = try CgroupFiles.parseBlkioServiceBytes(bytes, path: fuzzPath) }
        },
        FuzzTarget(name: "single_value") { bytes in
            // Both readings of the same file: a counter, and a limit that may be `max`.
            var counter: UInt64?
            parseOrRefuse { () throws(ProbeError) in counter = try SingleValue.parseCounter(bytes, path: fuzzPath) }
            parseOrRefuse { () throws(ProbeError) in
                let limit = try SingleValue.parse(bytes, path: fuzzPath)
                check(counter == nil || limit == counter, "parse and parseCounter disagree")
            }
        },
        FuzzTarget(name: "interface_name") { bytes in
            let name = String(decoding: bytes, as: UTF8.self)
            parseOrRefuse { () throws(ProbeError) in
                try InterfaceName.validate(name)
                // A name that passes is one path component under /sys/class/net, byte for byte as
                // the kernel reads it.
                let utf8 = name.utf8
                check(!utf8.contains(UInt8(ascii: "/")) && !utf8.contains(0), String(reflecting: name))
                check(!utf8.elementsEqual(".".utf8) && !utf8.elementsEqual("..".utf8), String(reflecting: name))
                check(utf8.count <= InterfaceName.maximumLength)
            }
        },
        FuzzTarget(name: "cgroup_path") { bytes in
            let path = String(decoding: bytes, as: UTF8.self)
            parseOrRefuse { () throws(ProbeError) in
                let relative = try CgroupReader.normalize(path)
                // What is joined under a hierarchy's mount point never climbs out of it. Checked on
                // bytes split at '/', as the kernel walks a path, not on Swift Characters.
                if !relative.isEmpty {
                    for component in relative.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
                        let kind: String? =
                            component.isEmpty ? "an empty"
                            : component.elementsEqual(".".utf8) ? "a '.'"
                            : component.elementsEqual("..".utf8) ? "a '..'" : nil
                        check(
                            kind == nil,
                            "normalize(\(String(reflecting: path))) gave \(String(reflecting: relative)), with \(kind ?? "") component")
                    }
                }
                let again = try CgroupReader.normalize(relative)
                check(again == relative, "normalize is not idempotent: \(String(reflecting: relative)) gave \(String(reflecting: again))")
            }
        },
        FuzzTarget(name: "disk_partition_name") { bytes in
            _ = DiskSelection.looksLikePartition(String(decoding: bytes, as: UTF8.self))
        },
    ]
}
