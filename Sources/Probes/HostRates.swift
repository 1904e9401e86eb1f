/// Percent of all CPU time spent in each mode between two samples (0–100; modes sum to 100,
/// guest and guest_nice excepted since they are inside user and nice).
public struct CPUModePercents: Sendable, Equatable {
    /// In `CPUTicks.modeNames` order; nil for a column the kernel does not print.
    public var modes: [Double?]
    /// 100 − idle − iowait.
    public var busy: Double

    /// nil when a counter went down (a reset) or no time passed.
    init?(from old: CPUTicks, to new: CPUTicks) {
        var deltas: [UInt64?] = []
        for (before, after) in zip(old.modes, new.modes) {
            switch (before, after) {
            case (let before?, let after?):
                guard after >= before else { return nil }
                deltas.append(after - before)
            default:
                deltas.append(nil)
            }
        }
        // guest and guest_nice (the last two) are already inside user and nice.
        let total = deltas.prefix(8).reduce(UInt64(0)) { $0 &+ ($1 ?? 0) }
        guard total > 0 else { return nil }
        modes = deltas.map { $0.map { Double($0) / Double(total) * 100 } }
        let idle = Double(deltas[3] ?? 0) + Double(deltas[4] ?? 0)
        busy = (Double(total) - idle) / Double(total) * 100
    }
}

/// CPU mode percents of one CPU.
public struct PerCPURate: Sendable, Equatable {
    public var id: Int
    public var percents: CPUModePercents
}

/// Bytes and operations per second of one disk between two samples.
public struct DiskRate: Sendable, Equatable {
    public var name: String
    public var readBytesPerSecond: Double
    public var writeBytesPerSecond: Double
    public var readsPerSecond: Double
    public var writesPerSecond: Double
}

/// Bytes and packets per second of one interface between two samples.
public struct InterfaceRate: Sendable, Equatable {
    public var name: String
    public var rxBytesPerSecond: Double
    public var txBytesPerSecond: Double
    public var rxPacketsPerSecond: Double
    public var txPacketsPerSecond: Double
}

/// Rates between two host samples of the same boot.
///
/// A device or interface present in only one of the samples, or whose counters went down
/// (removed and re-added, or reset), has no rate rather than a wrong one.
public struct HostRates: Sendable, Equatable {
    /// Seconds between the samples on the boot-time clock.
    public var elapsedSeconds: Double
    public var cpu: CPUModePercents?
    public var perCPU: [PerCPURate]
    public var disks: [DiskRate]
    public var interfaces: [InterfaceRate]

    /// nil when the samples come from different boots or are not in time order.
    public init?(from old: HostSample, to new: HostSample) {
        guard old.bootID == new.bootID, new.time.bootNanos > old.time.bootNanos else { return nil }
        let elapsed = Double(new.time.bootNanos - old.time.bootNanos) / 1e9
        elapsedSeconds = elapsed
        func rate(_ before: UInt64, _ after: UInt64) -> Double? {
            after >= before ? Double(after - before) / elapsed : nil
        }

        if let oldCPU = old.cpu, let newCPU = new.cpu {
            cpu = CPUModePercents(from: oldCPU.total, to: newCPU.total)
            let previous = Dictionary(oldCPU.perCPU.map { ($0.id, $0.ticks) }, uniquingKeysWith: { first, _ in first })
            perCPU = newCPU.perCPU.compactMap { entry in
                previous[entry.id].flatMap { CPUModePercents(from: $0, to: entry.ticks) }.map {
                    PerCPURate(id: entry.id, percents: $0)
                }
            }
        } else {
            cpu = nil
            perCPU = []
        }

        let oldDisks = Dictionary((old.disks ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        disks = (new.disks ?? []).compactMap { disk in
            guard let before = oldDisks[disk.name], before.major == disk.major, before.minor == disk.minor,
                let readBytes = rate(before.sectorsRead, disk.sectorsRead),
                let writeBytes = rate(before.sectorsWritten, disk.sectorsWritten),
                let reads = rate(before.readsCompleted, disk.readsCompleted),
                let writes = rate(before.writesCompleted, disk.writesCompleted)
            else { return nil }
            let sector = Double(DiskStats.sectorSize)
            return DiskRate(
                name: disk.name, readBytesPerSecond: readBytes * sector, writeBytesPerSecond: writeBytes * sector,
                readsPerSecond: reads, writesPerSecond: writes)
        }

        let oldInterfaces = Dictionary((old.network ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        interfaces = (new.network ?? []).compactMap { interface in
            guard let before = oldInterfaces[interface.name],
                let rxBytes = rate(before.rxBytes, interface.rxBytes),
                let txBytes = rate(before.txBytes, interface.txBytes),
                let rxPackets = rate(before.rxPackets, interface.rxPackets),
                let txPackets = rate(before.txPackets, interface.txPackets)
            else { return nil }
            return InterfaceRate(
                name: interface.name, rxBytesPerSecond: rxBytes, txBytesPerSecond: txBytes,
                rxPacketsPerSecond: rxPackets, txPacketsPerSecond: txPackets)
        }
    }
}

extension DiskRate: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name, readBytesPerSecond = "read_bytes_per_second", writeBytesPerSecond = "write_bytes_per_second"
        case readsPerSecond = "reads_per_second", writesPerSecond = "writes_per_second"
    }
}

extension InterfaceRate: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name, rxBytesPerSecond = "rx_bytes_per_second", txBytesPerSecond = "tx_bytes_per_second"
        case rxPacketsPerSecond = "rx_packets_per_second", txPacketsPerSecond = "tx_packets_per_second"
    }
}
