/// CPU time of one CPU, or of all of them, in USER_HZ ticks as /proc/stat reports it.
///
/// Columns arrived over time: iowait, irq and softirq in 2.5.41, steal in 2.6.11, guest in 2.6.24,
/// guest_nice in 2.6.33. Columns an older kernel does not print are nil.
/// `guest` and `guest_nice` are already included in `user` and `nice`; `busy` does not add them twice.
public struct CPUTicks: Sendable, Equatable, Hashable {
    public var user: UInt64
    public var nice: UInt64
    public var system: UInt64
    public var idle: UInt64
    public var iowait: UInt64?
    public var irq: UInt64?
    public var softirq: UInt64?
    public var steal: UInt64?
    public var guest: UInt64?
    public var guestNice: UInt64?

    public init(
        user: UInt64, nice: UInt64, system: UInt64, idle: UInt64, iowait: UInt64? = nil,
        irq: UInt64? = nil, softirq: UInt64? = nil, steal: UInt64? = nil, guest: UInt64? = nil,
        guestNice: UInt64? = nil
    ) {
        self.user = user
        self.nice = nice
        self.system = system
        self.idle = idle
        self.iowait = iowait
        self.irq = irq
        self.softirq = softirq
        self.steal = steal
        self.guest = guest
        self.guestNice = guestNice
    }

    /// The ten modes in /proc/stat's column order.
    public static let modeNames = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice",
    ]

    /// The modes in column order; nil where the kernel did not print the column.
    public var modes: [UInt64?] { [user, nice, system, idle, iowait, irq, softirq, steal, guest, guestNice] }

    /// Time spent doing work: everything but idle and iowait (a CPU waiting on IO is idle).
    /// Steal is counted: on a guest it is time the vCPU was runnable but not run.
    /// Wrapping arithmetic: with counters near 2^64 the sum wraps the same way the kernel's
    /// own counters would, and deltas of it stay correct.
    public var busy: UInt64 {
        user &+ nice &+ system &+ (irq ?? 0) &+ (softirq ?? 0) &+ (steal ?? 0)
    }

    /// All accounted time: busy plus idle and iowait (guest time is inside user and nice).
    public var total: UInt64 { busy &+ idle &+ (iowait ?? 0) }
}

/// One `cpuN` line of /proc/stat.
public struct PerCPUStat: Sendable, Equatable {
    /// The N of `cpuN`; ids can have holes where CPUs are offline.
    public var id: Int
    public var ticks: CPUTicks

    public init(id: Int, ticks: CPUTicks) {
        self.id = id
        self.ticks = ticks
    }
}

/// /proc/stat: CPU time by mode for all CPUs and each one, and the boot time.
public struct Stat: Sendable, Equatable {
    /// The aggregate `cpu` line.
    public var total: CPUTicks
    /// The `cpuN` lines, in file order.
    public var perCPU: [PerCPUStat]
    /// `btime`: boot time in unix seconds; nil if the line is absent.
    public var bootTime: UInt64?
    /// Ticks per second that the values are in (`sysconf(_SC_CLK_TCK)`, 100 on every common build).
    public var userHZ: Int

    public init(total: CPUTicks, perCPU: [PerCPUStat], bootTime: UInt64?, userHZ: Int) {
        self.total = total
        self.perCPU = perCPU
        self.bootTime = bootTime
        self.userHZ = userHZ
    }

    /// CPUs online when the file was read.
    public var cpuCount: Int { perCPU.count }

    /// Converts ticks of this file to seconds.
    public func seconds(_ ticks: UInt64) -> Double { Double(ticks) / Double(userHZ) }

    public static let path = "/proc/stat"

    public static func parse(_ text: String, userHZ: Int) throws(ProbeError) -> Stat {
        try parse(Array(text.utf8), userHZ: userHZ)
    }

    /// Parses the bytes of /proc/stat. Lines other than `cpu*` and `btime` (intr, ctxt, softirq …)
    /// are skipped without being split, since `intr` alone can hold thousands of numbers.
    public static func parse(_ bytes: [UInt8], userHZ: Int, path: String = Stat.path) throws(ProbeError) -> Stat {
        guard userHZ > 0 else {
            throw .malformed(path: path, line: 0, reason: "USER_HZ must be positive, got \(userHZ)")
        }
        var total: CPUTicks?
        var perCPU: [PerCPUStat] = []
        var bootTime: UInt64?
        let c = UInt8(ascii: "c"), p = UInt8(ascii: "p"), u = UInt8(ascii: "u"), b = UInt8(ascii: "b")

        for line in KernelText.lines(bytes) {
            let raw = line.bytes
            guard let first = raw.first else { continue }
            if first == c, raw.count >= 3, raw[raw.startIndex + 1] == p, raw[raw.startIndex + 2] == u {
                let fields = line.fields
                let label = fields[0]
                let ticks = try cpuTicks(fields.dropFirst(), line: line, path: path)
                if label.count == 3 {
                    guard total == nil else {
                        throw .malformed(path: path, line: line.number, reason: "second aggregate 'cpu' line")
                    }
                    total = ticks
                } else {
                    guard let id = KernelText.int(label.dropFirst(3)) else {
                        throw .malformed(
                            path: path, line: line.number, reason: "bad CPU label '\(KernelText.string(label))'")
                    }
                    perCPU.append(PerCPUStat(id: id, ticks: ticks))
                }
            } else if first == b, raw.starts(with: "btime ".utf8) {
                let fields = line.fields
                guard fields.count == 2, let value = KernelText.uint64(fields[1]) else {
                    throw .malformed(path: path, line: line.number, reason: "expected 'btime <seconds>', got '\(line.excerpt)'")
                }
                bootTime = value
            }
        }
        guard let total else {
            throw .malformed(path: path, line: 0, reason: "no aggregate 'cpu' line (truncated file?)")
        }
        guard !perCPU.isEmpty else {
            throw .malformed(path: path, line: 0, reason: "no per-CPU 'cpuN' lines (truncated file?)")
        }
        return Stat(total: total, perCPU: perCPU, bootTime: bootTime, userHZ: userHZ)
    }

    private static func cpuTicks(
        _ fields: ArraySlice<ArraySlice<UInt8>>, line: KernelLine, path: String
    ) throws(ProbeError) -> CPUTicks {
        // Kernels before 2.5.41 print 4 columns; current ones 10. More than 10 would be a new
        // column we do not know: keep the ten we do.
        guard fields.count >= 4 else {
            throw .malformed(
                path: path, line: line.number,
                reason: "expected at least 4 CPU time columns, got \(fields.count): '\(line.excerpt)'")
        }
        var values: [UInt64?] = Array(repeating: nil, count: 10)
        for (offset, field) in fields.prefix(10).enumerated() {
            guard let value = KernelText.uint64(field) else {
                throw .malformed(
                    path: path, line: line.number,
                    reason: "column \(CPUTicks.modeNames[offset]) is not an unsigned 64-bit integer: '\(KernelText.string(field))'")
            }
            values[offset] = value
        }
        return CPUTicks(
            user: values[0]!, nice: values[1]!, system: values[2]!, idle: values[3]!, iowait: values[4],
            irq: values[5], softirq: values[6], steal: values[7], guest: values[8], guestNice: values[9])
    }
}
