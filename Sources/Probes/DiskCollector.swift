import Synchronization

/// Which block devices of /proc/diskstats are metered.
public struct DiskSelection: Sendable, Equatable {
    /// Only whole disks, as /sys/block lists them. Partitions are left out because their IO is
    /// already counted on their disk: adding both would bill every byte twice.
    public var wholeDisksOnly: Bool
    /// Name globs. The default excludes devices with no IO of their own to bill or whose IO is
    /// counted again on the disks below them: loop, ram, zram, fd, sr (optical), nbd, and the
    /// stacked dm-* (LVM, crypt) and md* (RAID) devices.
    public var devices: NameFilter

    public init(wholeDisksOnly: Bool = true, devices: NameFilter = DiskSelection.defaultDevices) {
        self.wholeDisksOnly = wholeDisksOnly
        self.devices = devices
    }

    public static let defaultDevices = NameFilter(
        exclude: ["loop*", "ram*", "zram*", "fd*", "sr*", "nbd*", "dm-*", "md*"])

    /// A partition by its name alone, for trees without /sys/block: sda1, vdb2, xvda1, hdc3,
    /// nvme0n1p1, mmcblk0p2.
    static func looksLikePartition(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let last = bytes.last, last >= ASCII.zero, last <= ASCII.nine else { return false }
        var index = bytes.count - 1
        while index > 0, bytes[index - 1] >= ASCII.zero, bytes[index - 1] <= ASCII.nine { index -= 1 }
        guard index > 0 else { return false }
        let before = bytes[index - 1]
        // "…N p M": nvme0n1p1, mmcblk0p2.
        if before == UInt8(ascii: "p"), index >= 2, bytes[index - 2] >= ASCII.zero, bytes[index - 2] <= ASCII.nine {
            return true
        }
        // "sd|hd|vd|xvd" + letters + digits.
        let prefixes = ["sd", "hd", "vd", "xvd"]
        return prefixes.contains { prefix in
            name.hasPrefix(prefix) && bytes[prefix.utf8.count..<index].allSatisfy { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
                && index > prefix.utf8.count
        }
    }
}

/// /proc/diskstats filtered by a `DiskSelection`, the file kept open.
final class DiskCollector: HostCollector {
    let procFS: ProcFS
    let file: KeptPath
    let sysFS: SysFS
    let selection: DiskSelection
    /// Selection answers by device: the name globs are matched and sysfs is asked once per device,
    /// not once per sample.
    private let decisions = Mutex<[DeviceKey: Bool]>([:])

    private struct DeviceKey: Hashable {
        let major: UInt32
        let minor: UInt32
        let name: String
    }

    init(procFS: ProcFS, sysFS: SysFS, selection: DiskSelection) {
        self.procFS = procFS
        self.file = KeptPath(procFS.path("diskstats"))
        self.sysFS = sysFS
        self.selection = selection
    }

    var kind: CollectorName { .disk }

    func collect(into sample: inout HostSample) throws(ProbeError) {
        sample.disks = try file.read(Diskstats.parse(_:path:)).filter(isSelected)
    }

    private func isSelected(_ disk: DiskStats) -> Bool {
        let key = DeviceKey(major: disk.major, minor: disk.minor, name: disk.name)
        if let known = decisions.withLock({ $0[key] }) { return known }
        let selected = decide(disk.name)
        decisions.withLock { $0[key] = selected }
        return selected
    }

    private func decide(_ name: String) -> Bool {
        guard selection.devices.selects(name) else { return false }
        guard selection.wholeDisksOnly else { return true }
        return sysFS.isWholeDisk(name) ?? !DiskSelection.looksLikePartition(name)
    }
}
