/// /proc/meminfo: every field, in bytes.
///
/// Fields the kernel prints in kB are multiplied by 1024 (the kernel's "kB" is KiB). Fields it
/// prints without a unit (`HugePages_Total`, `HugePages_Free`, …) are counts and kept as they are.
public struct Meminfo: Sendable, Equatable {
    /// Every field by its kernel name, in bytes (or a count where the kernel prints no unit).
    public var fields: [String: UInt64]

    public static let path = "/proc/meminfo"

    public init(fields: [String: UInt64]) { self.fields = fields }

    public subscript(name: String) -> UInt64? { fields[name] }

    public var totalBytes: UInt64 { fields["MemTotal"] ?? 0 }
    public var freeBytes: UInt64? { fields["MemFree"] }

    /// Memory available for new work without swapping.
    ///
    /// `MemAvailable` where the kernel gives it (3.14 and later). Before 3.14 it is estimated the
    /// way `free` did then: MemFree + Buffers + Cached + SReclaimable — page cache that can be
    /// dropped counts as available. `availableIsEstimated` says which one was used.
    public var availableBytes: UInt64 {
        if let available = fields["MemAvailable"] { return min(available, totalBytes) }
        let estimate = (fields["MemFree"] ?? 0) &+ (fields["Buffers"] ?? 0) &+ (fields["Cached"] ?? 0)
            &+ (fields["SReclaimable"] ?? 0)
        return min(estimate, totalBytes)
    }

    /// True when `availableBytes` is the pre-3.14 estimate rather than the kernel's MemAvailable.
    public var availableIsEstimated: Bool { fields["MemAvailable"] == nil }

    /// Memory in use: MemTotal − available.
    public var usedBytes: UInt64 { totalBytes - availableBytes }

    /// Used memory as a percent of MemTotal (0–100).
    public var usedPercent: Double {
        totalBytes == 0 ? 0 : Double(usedBytes) / Double(totalBytes) * 100
    }

    public var swapTotalBytes: UInt64? { fields["SwapTotal"] }
    public var swapFreeBytes: UInt64? { fields["SwapFree"] }

    public static func parse(_ text: String) throws(ProbeError) -> Meminfo {
        try parse(Array(text.utf8))
    }

    /// Parses lines of the form `Name:   12345 kB` or, for HugePages_* counts, `Name:   12`. Any other shape, a value that
    /// is not an unsigned integer, a unit other than kB, or a value that overflows 64 bits in bytes,
    /// is an error naming the line. A file without MemTotal is refused as truncated.
    public static func parse(_ bytes: [UInt8], path: String = Meminfo.path) throws(ProbeError) -> Meminfo {
        var fields: [String: UInt64] = [:]
        fields.reserveCapacity(64)
        for line in KernelText.lines(bytes) {
            let raw = line.bytes
            if KernelText.trimmed(raw).isEmpty { continue }
            guard let colon = raw.firstIndex(of: ASCII.colon), colon > raw.startIndex else {
                throw .malformed(path: path, line: line.number, reason: "expected 'Name: value [kB]', got '\(line.excerpt)'")
            }
            let name = KernelText.string(raw[raw.startIndex..<colon])
            let rest = KernelText.fields(raw[(colon + 1)...])
            guard rest.count == 1 || rest.count == 2, let number = KernelText.uint64(rest[0]) else {
                throw .malformed(path: path, line: line.number, reason: "value of \(name) is not an unsigned integer: '\(line.excerpt)'")
            }
            var value = number
            // Only the HugePages_* counts are printed without a unit; any other field without
            // "kB" is a line cut short, which would otherwise read 1024 times too small.
            if rest.count == 1, !name.hasPrefix("HugePages_") {
                throw .malformed(path: path, line: line.number, reason: "\(name) has no kB unit (truncated line?)")
            }
            if rest.count == 2 {
                guard rest[1].elementsEqual("kB".utf8) else {
                    throw .malformed(path: path, line: line.number, reason: "unknown unit '\(KernelText.string(rest[1]))' for \(name)")
                }
                let (scaled, overflow) = number.multipliedReportingOverflow(by: 1024)
                guard !overflow else {
                    throw .malformed(path: path, line: line.number, reason: "\(name) overflows 64 bits in bytes")
                }
                value = scaled
            }
            fields[name] = value
        }
        guard fields["MemTotal"] != nil else {
            throw .malformed(path: path, line: 0, reason: "no MemTotal line (truncated file?)")
        }
        return Meminfo(fields: fields)
    }
}
