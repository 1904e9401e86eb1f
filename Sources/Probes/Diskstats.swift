/// One device line of /proc/diskstats.
///
/// Sector counts are in 512-byte units whatever the device's real sector size (the kernel
/// documents this in Documentation/admin-guide/iostats.rst).
public struct DiskStats: Sendable, Equatable {
    public var major: UInt32
    public var minor: UInt32
    public var name: String
    public var readsCompleted: UInt64
    public var readsMerged: UInt64
    public var sectorsRead: UInt64
    public var readTimeMilliseconds: UInt64
    public var writesCompleted: UInt64
    public var writesMerged: UInt64
    public var sectorsWritten: UInt64
    public var writeTimeMilliseconds: UInt64
    public var ioInProgress: UInt64
    public var ioTimeMilliseconds: UInt64
    public var weightedIOTimeMilliseconds: UInt64
    /// Discard columns, kernel 4.18 and later (18 fields).
    public var discardsCompleted: UInt64?
    public var discardsMerged: UInt64?
    public var sectorsDiscarded: UInt64?
    public var discardTimeMilliseconds: UInt64?
    /// Flush columns, kernel 5.5 and later (20 fields).
    public var flushesCompleted: UInt64?
    public var flushTimeMilliseconds: UInt64?

    public static let sectorSize: UInt64 = 512

    /// Bytes read; wraps modulo 2^64 like the counter it comes from, so deltas stay right.
    public var bytesRead: UInt64 { sectorsRead &* Self.sectorSize }
    /// Bytes written; wraps modulo 2^64 like the counter it comes from.
    public var bytesWritten: UInt64 { sectorsWritten &* Self.sectorSize }
}

/// /proc/diskstats.
public enum Diskstats {
    public static let path = "/proc/diskstats"

    public static func parse(_ text: String) throws(ProbeError) -> [DiskStats] {
        try parse(Array(text.utf8))
    }

    /// Parses every device line. Formats are told apart by field count (major, minor and name
    /// included): 14 fields up to kernel 4.17, 18 from 4.18 (discards), 20 from 5.5 (flushes).
    /// More than 20 is taken as a newer kernel and the known 20 are read; any other count is an
    /// error naming the line (the 7-field partition lines of kernels before 2.6.25 included).
    public static func parse(_ bytes: [UInt8], path: String = Diskstats.path) throws(ProbeError) -> [DiskStats] {
        var devices: [DiskStats] = []
        for line in KernelText.lines(bytes) {
            let fields = line.fields
            if fields.isEmpty { continue }
            guard fields.count == 14 || fields.count == 18 || fields.count >= 20 else {
                throw .malformed(
                    path: path, line: line.number,
                    reason: "expected 14, 18 or 20 fields, got \(fields.count): '\(line.excerpt)'")
            }
            guard let major = KernelText.uint64(fields[0]).flatMap(UInt32.init(exactly:)),
                let minor = KernelText.uint64(fields[1]).flatMap(UInt32.init(exactly:))
            else {
                throw .malformed(path: path, line: line.number, reason: "bad major:minor in '\(line.excerpt)'")
            }
            var numbers: [UInt64] = []
            numbers.reserveCapacity(17)
            for index in 3..<min(fields.count, 20) {
                guard let value = KernelText.uint64(fields[index]) else {
                    throw .malformed(
                        path: path, line: line.number,
                        reason: "field \(index + 1) is not an unsigned 64-bit integer: '\(KernelText.string(fields[index]))'")
                }
                numbers.append(value)
            }
            var device = DiskStats(
                major: major, minor: minor, name: KernelText.string(fields[2]),
                readsCompleted: numbers[0], readsMerged: numbers[1], sectorsRead: numbers[2],
                readTimeMilliseconds: numbers[3], writesCompleted: numbers[4], writesMerged: numbers[5],
                sectorsWritten: numbers[6], writeTimeMilliseconds: numbers[7], ioInProgress: numbers[8],
                ioTimeMilliseconds: numbers[9], weightedIOTimeMilliseconds: numbers[10])
            if numbers.count >= 15 {
                device.discardsCompleted = numbers[11]
                device.discardsMerged = numbers[12]
                device.sectorsDiscarded = numbers[13]
                device.discardTimeMilliseconds = numbers[14]
            }
            if numbers.count >= 17 {
                device.flushesCompleted = numbers[15]
                device.flushTimeMilliseconds = numbers[16]
            }
            devices.append(device)
        }
        return devices
    }
}
