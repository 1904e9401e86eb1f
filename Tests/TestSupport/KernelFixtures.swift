public import Foundation
public import Probes
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Real kernel objects for tests that check the probes, or the whole agent, against the running
/// kernel: cgroups (`TemporaryCgroup`), a child that burns CPU or does IO from inside them
/// (`StoppedChild`), a veth pair whose peer is in a network namespace of its own (`VethPair`), and
/// ICMP echo traffic of a known size across it (`ICMPEcho`).
///
/// They need root. Each `…Problem` property tries the operation once (making and removing a probe
/// object) and says why it cannot be done here, nil when it can; a test says
/// `.enabled(if: KernelFixtures.available(KernelFixtures.networkNamespaceProblem, for: "…"), "…")`
/// and is reported as skipped where it cannot run (no root, a read-only /sys/fs/cgroup, no `ip`),
/// with the reason printed. Every object has a name unique to the test process (its pid and a
/// counter) and is removed by `remove()`/`stop()` or when it is released, whatever path the test
/// takes; removal never throws. The test targets all run in one process, so nothing here may be
/// told apart by target: names, addresses and ICMP identifiers all come from the one counter.
public enum KernelFixtures {
    public static let isRoot = geteuid() == 0

    /// This host's layout, from /proc/self/mountinfo; nil when that cannot be read.
    public static let hostLayout: CgroupLayout? = try? CgroupLayout.detect(ProcFS().mountinfo())

    private static let counter = Mutex(0)

    /// A number no other call in this process returns (until it wraps, far beyond any test run).
    static func nextNumber() -> Int {
        counter.withLock { value in
            value += 1
            return value
        }
    }

    /// `prefix` + pid + a per-process counter: "hmp" gives "hmp4242x1". Short enough for an
    /// interface name (15 bytes) with a 3-byte prefix and pids up to 7 digits.
    public static func uniqueName(_ prefix: String) -> String { "\(prefix)\(getpid())x\(nextNumber())" }

    // MARK: What this machine allows

    /// Why no cgroup can be made and removed under `mountPoint` here; nil when one can.
    public static func cgroupProblem(under mountPoint: String?, hierarchy: String) -> String? {
        guard isRoot else { return "not root (euid \(geteuid()))" }
        guard let mountPoint else { return "no \(hierarchy) hierarchy in /proc/self/mountinfo" }
        let probe = mountPoint + "/" + uniqueName("hm-check-")
        guard mkdir(probe, 0o755) == 0 else { return "mkdir under \(mountPoint): \(String(cString: strerror(errno)))" }
        guard rmdir(probe) == 0 else { return "rmdir \(probe): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// The cgroup2 tree: /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a unified one.
    public static let unifiedCgroupProblem = cgroupProblem(under: hostLayout?.unified, hierarchy: "cgroup2")
    /// The v1 cpuacct hierarchy (legacy and hybrid hosts only).
    public static let cpuacctCgroupProblem = cgroupProblem(under: hostLayout?.controllers["cpuacct"], hierarchy: "v1 cpuacct")
    /// The v1 blkio hierarchy (legacy and hybrid hosts only).
    public static let blkioCgroupProblem = cgroupProblem(under: hostLayout?.controllers["blkio"], hierarchy: "v1 blkio")

    /// Root, a cgroup2 tree and a v1 cpuacct hierarchy, both writable: a hybrid host.
    public static var canMakeHybridCPUCgroups: Bool { unifiedCgroupProblem == nil && cpuacctCgroupProblem == nil }
    /// Root and a writable v1 blkio hierarchy.
    public static var canMakeBlkioCgroups: Bool { blkioCgroupProblem == nil }

    /// The `ip` tool from iproute2, where it is installed.
    public static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Why no network namespace with a veth pair can be made here; nil when one can.
    public static let networkNamespaceProblem: String? = {
        guard isRoot else { return "not root (euid \(geteuid()))" }
        guard let ipTool else { return "no ip tool (iproute2) in /usr/sbin, /sbin, /usr/bin or /bin" }
        let name = uniqueName("hm-check-ns-")
        do {
            try run([ipTool, "netns", "add", name])
            try run([ipTool, "netns", "delete", name])
        } catch {
            return "\(error)"
        }
        return nil
    }()

    /// Root, `ip`, and a network namespace can be added and deleted.
    public static var canMakeNetworkNamespaces: Bool { networkNamespaceProblem == nil }

    /// For `.enabled(if:)`: true when `problem` is nil, else prints why `test` is skipped (Swift
    /// Testing shows only the trait's fixed comment).
    public static func available(_ problem: String?, for test: String) -> Bool {
        guard let problem else { return true }
        print("skipping \(test): \(problem)")
        return false
    }

    // MARK: Commands and control files

    /// Runs a command to its end; its standard output, or an error with its standard error when
    /// it fails.
    @discardableResult
    public static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestSupportError(
                "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes `text` to an existing file (a cgroup or /proc/sys control file) in one write(2).
    public static func write(_ text: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TestSupportError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw TestSupportError("write '\(text)' to \(path): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Disks

    /// The block device mounted at / (its mountinfo source), where there is one: /dev/vda, say.
    public static let rootBlockDevice: String? = {
        guard let mounts = try? ProcFS().mountinfo(),
            let root = mounts.last(where: { $0.mountPoint == "/" }), root.source.hasPrefix("/dev/")
        else { return nil }
        var info = stat()
        guard stat(root.source, &info) == 0, info.st_mode & S_IFMT == S_IFBLK else { return nil }
        return root.source
    }()

    /// The whole disk that holds `path`'s filesystem as MAJ:MIN (throttle rules take whole disks
    /// only), or nil where the filesystem has no block device (tmpfs, overlay).
    public static func wholeDisk(holding path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let device = UInt64(info.st_dev)
        let sysfs = "/sys/dev/block/\(DeviceNumber.major(device)):\(DeviceNumber.minor(device))"
        guard FileReader.exists(sysfs) else { return nil }
        // A partition's sysfs directory sits in its disk's, whose `dev` file names the disk.
        let devFile = FileReader.exists(sysfs + "/partition") ? sysfs + "/../dev" : sysfs + "/dev"
        guard let bytes = try? FileReader.read(devFile) else { return nil }
        let number = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
            .trimmingCharacters(in: .whitespaces)
        return number.isEmpty ? nil : number
    }
}
