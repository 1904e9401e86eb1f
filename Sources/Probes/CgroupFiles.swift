/// Bytes read and written by a cgroup's tasks, summed over block devices. Discards are not in
/// either, as in io.stat's rbytes/wbytes.
public struct CgroupIOBytes: Sendable, Equatable {
    public var readBytes: UInt64
    public var writeBytes: UInt64

    public init(readBytes: UInt64, writeBytes: UInt64) {
        self.readBytes = readBytes
        self.writeBytes = writeBytes
    }
}

/// Parsers for the cgroup files that `CgroupReader` reads; pure functions of the files' bytes.
/// Single-number files (`memory.current`, `cpuacct.usage`) go through `SingleValue`.
///
/// Sums over devices use wrapping arithmetic, like every sum in Probes that deltas are taken of:
/// a wrapped sum still gives the right delta.
public enum CgroupFiles {
    /// cgroup v2 `cpu.stat`: `usage_usec N` plus other `key N` lines. Returns usage_usec in
    /// nanoseconds (× 1000), the unit of v1's cpuacct.usage.
    ///
    /// usage_usec is written by the cgroup core (rstat), not the cpu controller, so it is there in
    /// every v2 cgroup since Linux 4.15, including systemd's hybrid "unified" tree where no
    /// controller is enabled. Other lines vary (user_usec, nice_usec, core_sched.force_idle_usec,
    /// nr_periods…) and are only checked for their `key value` shape.
    public static func parseCPUStat(_ bytes: [UInt8], path: String) throws(ProbeError) -> UInt64 {
        var usage: UInt64?
        for line in KernelText.lines(bytes) {
            let fields = line.fields
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw .malformed(path: path, line: line.number, reason: "expected 'key value', got '\(line.excerpt)'")
            }
            guard usage == nil, fields[0].elementsEqual("usage_usec".utf8) else { continue }
            guard let micros = KernelText.uint64(fields[1]) else {
                throw .malformed(
                    path: path, line: line.number,
                    reason: "usage_usec is not an unsigned 64-bit integer: '\(KernelText.string(fields[1].prefix(40)))'")
            }
            let (nanos, overflow) = micros.multipliedReportingOverflow(by: 1000)
            guard !overflow else {
                throw .malformed(path: path, line: line.number, reason: "usage_usec \(micros) is too large to count in nanoseconds")
            }
            usage = nanos
        }
        guard let usage else { throw .malformed(path: path, line: 0, reason: "no usage_usec line") }
        return usage
    }

    /// cgroup v2 `io.stat`: one line per device, `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N
    /// dios=N`, with more `key=value` pairs when io.cost or io.latency are on (some not integers:
    /// `cost.vrate=135.45`); only rbytes and wbytes are read. An empty file is a cgroup that has
    /// done no IO: the kernel prints no line for a device without any.
    public static func parseIOStat(_ bytes: [UInt8], path: String) throws(ProbeError) -> CgroupIOBytes {
        var total = CgroupIOBytes(readBytes: 0, writeBytes: 0)
        for line in KernelText.lines(bytes) {
            let fields = line.fields
            if fields.isEmpty { continue }
            guard isDevice(fields[0]) else {
                throw .malformed(path: path, line: line.number, reason: "expected 'MAJ:MIN key=value…', got '\(line.excerpt)'")
            }
            var read: UInt64?
            var written: UInt64?
            for field in fields.dropFirst() {
                guard let equals = field.firstIndex(of: UInt8(ascii: "=")), equals > field.startIndex else {
                    throw .malformed(
                        path: path, line: line.number, reason: "expected key=value, got '\(KernelText.string(field.prefix(40)))'")
                }
                let key = field[field.startIndex..<equals]
                let isRead = key.elementsEqual("rbytes".utf8)
                guard isRead || key.elementsEqual("wbytes".utf8) else { continue }
                guard let value = KernelText.uint64(field[(equals + 1)...]) else {
                    throw .malformed(
                        path: path, line: line.number,
                        reason: "\(KernelText.string(key)) is not an unsigned 64-bit integer: '\(KernelText.string(field.prefix(40)))'")
                }
                if isRead { read = value } else { written = value }
            }
            guard let read, let written else {
                throw .malformed(path: path, line: line.number, reason: "missing rbytes or wbytes: '\(line.excerpt)'")
            }
            total.readBytes &+= read
            total.writeBytes &+= written
        }
        return total
    }

    /// cgroup v1 `blkio.throttle.io_service_bytes[_recursive]` or `blkio.io_service_bytes[_recursive]`:
    /// per device `MAJ:MIN Read N`, `Write`, `Sync`, `Async`, `Discard` (4.19+) and `Total` lines,
    /// then a last `Total N` over all devices. Read and Write are summed over devices; Sync and
    /// Async split the same bytes another way, and an operation a later kernel adds is skipped.
    /// The kernel always prints the final Total, so an empty file is a truncated one.
    public static func parseBlkioServiceBytes(_ bytes: [UInt8], path: String) throws(ProbeError) -> CgroupIOBytes {
        var total = CgroupIOBytes(readBytes: 0, writeBytes: 0)
        var sawTotal = false
        for line in KernelText.lines(bytes) {
            let fields = line.fields
            if fields.isEmpty { continue }
            if fields.count == 2, fields[0].elementsEqual("Total".utf8) {
                guard KernelText.uint64(fields[1]) != nil else {
                    throw .malformed(
                        path: path, line: line.number,
                        reason: "Total is not an unsigned 64-bit integer: '\(KernelText.string(fields[1].prefix(40)))'")
                }
                sawTotal = true
                continue
            }
            guard fields.count == 3, isDevice(fields[0]) else {
                throw .malformed(
                    path: path, line: line.number, reason: "expected 'MAJ:MIN Operation N' or 'Total N', got '\(line.excerpt)'")
            }
            guard let value = KernelText.uint64(fields[2]) else {
                throw .malformed(
                    path: path, line: line.number,
                    reason: "\(KernelText.string(fields[1])) is not an unsigned 64-bit integer: '\(KernelText.string(fields[2].prefix(40)))'")
            }
            if fields[1].elementsEqual("Read".utf8) {
                total.readBytes &+= value
            } else if fields[1].elementsEqual("Write".utf8) {
                total.writeBytes &+= value
            }
        }
        guard sawTotal else {
            throw .malformed(path: path, line: 0, reason: "no final 'Total' line (truncated file?)")
        }
        return total
    }

    /// `MAJ:MIN`, both decimal.
    static func isDevice(_ field: ArraySlice<UInt8>) -> Bool {
        guard let colon = field.firstIndex(of: ASCII.colon) else { return false }
        return KernelText.uint64(field[field.startIndex..<colon]) != nil && KernelText.uint64(field[(colon + 1)...]) != nil
    }
}
