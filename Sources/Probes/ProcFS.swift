/// Reads /proc files under a configurable root (node_exporter's `--path.procfs`), so tests and
/// `hostmeter sample --proc-root` run the same code as production on another tree.
public struct ProcFS: Sendable, Equatable {
    public var root: String

    public init(root: String = "/proc") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// `relative` (e.g. "stat", "net/dev") under the root.
    public func path(_ relative: String) -> String { root + "/" + relative }

    public func stat(userHZ: Int) throws(ProbeError) -> Stat {
        let path = path("stat")
        return try Stat.parse(FileReader.read(path), userHZ: userHZ, path: path)
    }

    public func meminfo() throws(ProbeError) -> Meminfo {
        let path = path("meminfo")
        return try Meminfo.parse(FileReader.read(path), path: path)
    }

    public func diskstats() throws(ProbeError) -> [DiskStats] {
        let path = path("diskstats")
        return try Diskstats.parse(FileReader.read(path), path: path)
    }

    public func netDev() throws(ProbeError) -> [NetDevStats] {
        let path = path("net/dev")
        return try NetDev.parse(FileReader.read(path), path: path)
    }

    public func loadAvg() throws(ProbeError) -> LoadAvg {
        let path = path("loadavg")
        return try LoadAvg.parse(FileReader.read(path), path: path)
    }

    public func uptime() throws(ProbeError) -> Uptime {
        let path = path("uptime")
        return try Uptime.parse(FileReader.read(path), path: path)
    }

    public func bootID() throws(ProbeError) -> String {
        let path = path("sys/kernel/random/boot_id")
        return try BootID.parse(FileReader.read(path), path: path)
    }

    /// The mount table as this process sees it (its mount namespace).
    public func mountinfo() throws(ProbeError) -> [MountInfo] {
        let path = path("self/mountinfo")
        return try Mountinfo.parse(FileReader.read(path), path: path)
    }
}

/// Reads /sys under a configurable root (node_exporter's `--path.sysfs`).
public struct SysFS: Sendable, Equatable {
    public var root: String

    public init(root: String = "/sys") {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public func path(_ relative: String) -> String { root + "/" + relative }

    /// Whether the kernel lists `device` as a whole disk: /sys/block holds whole disks only,
    /// partitions live below their disk. nil when /sys/block itself is missing (no sysfs mounted
    /// under the root), in which case the caller has to decide another way.
    /// A '/' in a diskstats name (cciss/c0d0) is '!' in sysfs.
    public func isWholeDisk(_ device: String) -> Bool? {
        let blockDirectory = path("block")
        guard FileReader.isDirectory(blockDirectory) else { return nil }
        let sysfsName = String(device.map { $0 == "/" ? "!" : $0 })
        return FileReader.exists(blockDirectory + "/" + sysfsName)
    }
}
