import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

/// Real kernel objects for tests that check the probes against the running kernel: cgroups, a
/// child process that burns CPU or does IO from inside them, a veth pair whose peer is in a
/// network namespace of its own, and ICMP echo traffic of a known size across it.
///
/// They need root. Each `can…` property tries the operation once (making and removing a probe
/// object), so a test can say `.enabled(if: KernelFixtures.canMakeNetworkNamespaces, "…")` and be
/// reported as skipped with the reason where it cannot run (no root, a read-only /sys/fs/cgroup,
/// no `ip`). Every object has a name unique to the process (its pid and a counter) and is removed
/// by `remove()` or when it is released, whatever path the test takes; removal never throws.
///
/// Only Foundation, Glibc and Probes are used, so the file can be copied into another test target.
enum KernelFixtures {
    static let isRoot = geteuid() == 0

    /// This host's layout, from /proc/self/mountinfo; nil when that cannot be read.
    static let hostLayout: CgroupLayout? = try? CgroupLayout.detect(ProcFS().mountinfo())

    private static let counter = Mutex(0)

    /// `prefix` + pid + a per-process counter: "hmp" gives "hmp4242x1". Short enough for an
    /// interface name (15 bytes) with a 3-byte prefix and pids up to 7 digits.
    static func uniqueName(_ prefix: String) -> String {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        return "\(prefix)\(getpid())x\(number)"
    }

    /// Whether a child cgroup can be made and removed under `mountPoint`.
    static func canMakeCgroup(under mountPoint: String?) -> Bool {
        guard isRoot, let mountPoint else { return false }
        let probe = mountPoint + "/" + uniqueName("hm-probe-check-")
        guard mkdir(probe, 0o755) == 0 else { return false }
        return rmdir(probe) == 0
    }

    /// Root, a cgroup2 tree and a v1 cpuacct hierarchy, both writable: a hybrid host.
    static let canMakeHybridCPUCgroups: Bool =
        canMakeCgroup(under: hostLayout?.unified) && canMakeCgroup(under: hostLayout?.controllers["cpuacct"])

    /// Root and a writable v1 blkio hierarchy.
    static let canMakeBlkioCgroups: Bool = canMakeCgroup(under: hostLayout?.controllers["blkio"])

    /// The `ip` tool from iproute2, where it is installed.
    static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Root, `ip`, and a network namespace can be added and deleted.
    static let canMakeNetworkNamespaces: Bool = {
        guard isRoot, let ipTool else { return false }
        let name = uniqueName("hm-check-ns-")
        guard (try? run([ipTool, "netns", "add", name])) != nil else { return false }
        return (try? run([ipTool, "netns", "delete", name])) != nil
    }()

    /// Runs a command to its end; its standard output, or an error with both outputs when it fails.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
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
            throw KernelFixtureError(
                "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes `text` to an existing file (a cgroup or /proc/sys control file) in one write(2).
    static func write(_ text: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw KernelFixtureError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw KernelFixtureError("write '\(text)' to \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The block device mounted at / (its mountinfo source), where there is one: /dev/vda, say.
    static let rootBlockDevice: String? = {
        guard let mounts = try? ProcFS().mountinfo(),
            let root = mounts.last(where: { $0.mountPoint == "/" }), root.source.hasPrefix("/dev/")
        else { return nil }
        var info = stat()
        guard stat(root.source, &info) == 0, info.st_mode & S_IFMT == S_IFBLK else { return nil }
        return root.source
    }()

    /// The whole disk that holds `path`'s filesystem as MAJ:MIN (throttle rules take whole disks
    /// only), or nil where the filesystem has no block device (tmpfs, overlay).
    static func wholeDisk(holding path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let device = UInt64(info.st_dev)
        let sysfs = "/sys/dev/block/\(DeviceNumber.major(device)):\(DeviceNumber.minor(device))"
        guard FileReader.exists(sysfs) else { return nil }
        // A partition's sysfs directory sits in its disk's, whose `dev` file names the disk.
        let devFile = FileReader.exists(sysfs + "/partition") ? sysfs + "/../dev" : sysfs + "/dev"
        guard let bytes = try? FileReader.read(devFile) else { return nil }
        return KernelText.string(KernelText.trimmed(ArraySlice(bytes.prefix { $0 != ASCII.newline })))
    }
}

struct KernelFixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A cgroup made for a test under one hierarchy's mount point; removed with `remove()` or on release.
final class TemporaryCgroup {
    let mountPoint: String
    /// The path CgroupReader takes: relative to the hierarchy's root.
    let relativePath: String
    var path: String { mountPoint + "/" + relativePath }
    private var removed = false

    init(mountPoint: String, name: String) throws {
        self.mountPoint = mountPoint
        self.relativePath = name
        guard mkdir(mountPoint + "/" + name, 0o755) == 0 else {
            throw KernelFixtureError("mkdir \(mountPoint)/\(name): \(String(cString: strerror(errno)))")
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    func add(_ pid: pid_t) throws { try KernelFixtures.write("\(pid)\n", to: path + "/cgroup.procs") }

    /// The content of one of the cgroup's files.
    func read(_ file: String) throws -> [UInt8] { try FileReader.read(path + "/" + file) }

    /// Moves what is left in the cgroup to the hierarchy's root and removes the directory. A cgroup
    /// whose last task just exited can refuse rmdir (EBUSY) for a moment, so it is retried for 2 s.
    func remove() {
        guard !removed else { return }
        removed = true
        if let procs = try? FileReader.read(path + "/cgroup.procs") {
            for pid in String(decoding: procs, as: UTF8.self).split(separator: "\n") {
                try? KernelFixtures.write("\(pid)\n", to: mountPoint + "/cgroup.procs")
            }
        }
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(10_000)
        }
        print("KernelFixtures: could not remove cgroup \(path): \(String(cString: strerror(errno)))")
    }

    deinit { remove() }
}

/// A child process that stops itself (SIGSTOP) before running `arguments`, so it can be put into
/// cgroups before it does anything; killed and reaped on release.
final class StoppedChild {
    let pid: pid_t
    private var reaped = false

    /// Starts `/bin/sh -c 'kill -STOP $$; exec "$@"' sh arguments…` and waits until it has stopped.
    init(_ arguments: [String]) throws {
        let argv = ["/bin/sh", "-c", #"kill -STOP $$; exec "$@""#, "sh"] + arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/sh", nil, nil, &cArguments, environ)
        guard status == 0 else { throw KernelFixtureError("posix_spawn /bin/sh: \(String(cString: strerror(status)))") }
        pid = child
        var waitStatus: Int32 = 0
        guard waitpid(child, &waitStatus, WUNTRACED) == child, Self.isStopped(waitStatus) else {
            kill(child, SIGKILL)
            _ = waitpid(child, &waitStatus, 0)
            reaped = true
            throw KernelFixtureError("child \(child) did not stop itself (wait status \(waitStatus))")
        }
    }

    /// A child that will spin on the CPU in the shell once resumed.
    static func cpuBurner() throws -> StoppedChild { try StoppedChild(["/bin/sh", "-c", "while :; do :; done"]) }

    func resume() { kill(pid, SIGCONT) }

    /// Stops the child and waits until it has stopped, so its counters hold still.
    func pause() throws {
        kill(pid, SIGSTOP)
        var waitStatus: Int32 = 0
        guard waitpid(pid, &waitStatus, WUNTRACED) == pid, Self.isStopped(waitStatus) else {
            throw KernelFixtureError("child \(pid) did not stop (wait status \(waitStatus))")
        }
    }

    /// Waits at most `timeout` seconds for the child to exit; its exit status, or nil on timeout
    /// or when it was killed by a signal.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        var waitStatus: Int32 = 0
        while Date() < deadline {
            let result = waitpid(pid, &waitStatus, WNOHANG)
            if result == pid {
                reaped = true
                return waitStatus & 0x7F == 0 ? (waitStatus >> 8) & 0xFF : nil
            }
            usleep(10_000)
        }
        return nil
    }

    /// utime + stime of /proc/PID/stat in nanoseconds: the CPU time the kernel charged the process.
    func cpuNanoseconds() throws -> UInt64 {
        let bytes = try FileReader.read("/proc/\(pid)/stat")
        // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else {
            throw KernelFixtureError("/proc/\(pid)/stat has no ')'")
        }
        let fields = KernelText.fields(bytes[(close + 1)...])
        // After the name: state (3), ppid (4) … utime (14), stime (15).
        guard fields.count > 13, let user = KernelText.uint64(fields[11]), let system = KernelText.uint64(fields[12]) else {
            throw KernelFixtureError("/proc/\(pid)/stat has no utime and stime")
        }
        return (user + system) * 1_000_000_000 / UInt64(HostSamplerConfiguration.systemUserHZ)
    }

    /// Kills and reaps the child; safe to call twice.
    func stop() {
        guard !reaped else { return }
        reaped = true
        kill(pid, SIGKILL)
        var waitStatus: Int32 = 0
        _ = waitpid(pid, &waitStatus, 0)
    }

    deinit { stop() }

    /// WIFSTOPPED, which Swift does not import (a C macro).
    private static func isStopped(_ status: Int32) -> Bool { status & 0xFF == 0x7F }
}

/// A veth pair: `hostName` in this network namespace, `peerName` moved into a new namespace
/// `namespace`, with IPv4 addresses on a /30 and IPv6 off on both ends so no neighbour discovery
/// or MLD adds packets to the counters. Deleting the namespace deletes the pair.
final class VethPair {
    let namespace: String
    let hostName: String
    let peerName: String
    let hostAddress: String
    let peerAddress: String
    private var removed = false

    init() throws {
        guard let ip = KernelFixtures.ipTool else { throw KernelFixtureError("no ip tool") }
        namespace = KernelFixtures.uniqueName("hm-probes-ns-")
        hostName = KernelFixtures.uniqueName("hmh")
        peerName = KernelFixtures.uniqueName("hmp")
        // A /30 in 10.240.0.0/12 picked by pid and counter: unlikely to meet a real route.
        let slot = Int(getpid()) &* 31 &+ Int(hostName.utf8.last ?? 0)
        let base = 0x0AF0_0000 | ((slot & 0x3FFFF) << 2)
        func dotted(_ value: Int) -> String { "\(value >> 24 & 255).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)" }
        hostAddress = dotted(base + 1)
        peerAddress = dotted(base + 2)
        do {
            try KernelFixtures.run([ip, "netns", "add", namespace])
            try KernelFixtures.run([ip, "link", "add", hostName, "type", "veth", "peer", "name", peerName])
            try? KernelFixtures.write("1\n", to: "/proc/sys/net/ipv6/conf/\(hostName)/disable_ipv6")
            try KernelFixtures.run([ip, "link", "set", peerName, "netns", namespace])
            // Without IPv6 in the kernel there is no file to write, and nothing to silence.
            _ = try? KernelFixtures.run(
                [ip, "netns", "exec", namespace, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/\(peerName)/disable_ipv6"])
            try KernelFixtures.run([ip, "addr", "add", hostAddress + "/30", "dev", hostName])
            try KernelFixtures.run([ip, "link", "set", hostName, "up"])
            try KernelFixtures.run([ip, "-n", namespace, "addr", "add", peerAddress + "/30", "dev", peerName])
            try KernelFixtures.run([ip, "-n", namespace, "link", "set", peerName, "up"])
            try KernelFixtures.run([ip, "-n", namespace, "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// The peer's counters as the kernel reports them inside its namespace (/proc/net/dev read there).
    func peerStatistics() throws -> NetDevStats {
        guard let ip = KernelFixtures.ipTool else { throw KernelFixtureError("no ip tool") }
        let text = try KernelFixtures.run([ip, "netns", "exec", namespace, "cat", "/proc/net/dev"])
        guard let stats = try NetDev.parse(text).first(where: { $0.name == peerName }) else {
            throw KernelFixtureError("\(peerName) not in \(namespace)'s /proc/net/dev")
        }
        return stats
    }

    /// Deletes the pair only, keeping the namespace (to see an interface disappear).
    func deleteLink() throws {
        guard let ip = KernelFixtures.ipTool else { throw KernelFixtureError("no ip tool") }
        try KernelFixtures.run([ip, "link", "delete", hostName])
    }

    /// Deletes the namespace and, if it is still there, the host end; safe to call twice.
    func remove() {
        guard !removed, let ip = KernelFixtures.ipTool else { return }
        removed = true
        _ = try? KernelFixtures.run([ip, "netns", "delete", namespace])
        if FileReader.exists("/sys/class/net/" + hostName) {
            _ = try? KernelFixtures.run([ip, "link", "delete", hostName])
        }
    }

    deinit { remove() }
}

/// ICMP echo over a raw socket (root only): each request of `payload` bytes is answered by the
/// peer's kernel with a reply of the same size, so one process makes traffic of a known size in
/// both directions without running anything inside the peer's namespace.
final class ICMPEcho {
    private let socket: Int32
    private let destination: sockaddr_in
    private let identifier = UInt16(truncatingIfNeeded: getpid())
    private var sequence: UInt16 = 0

    init(to address: String) throws {
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        guard descriptor >= 0 else { throw KernelFixtureError("raw socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var destination = sockaddr_in()
        destination.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, address, &destination.sin_addr) == 1 else {
            close(descriptor)
            throw KernelFixtureError("bad address \(address)")
        }
        self.socket = descriptor
        self.destination = destination
    }

    deinit { close(socket) }

    /// Bytes one echo of `payload` bytes puts on an Ethernet link (veth counts frames without the
    /// FCS): Ethernet 14 + IPv4 20 + ICMP 8 header bytes.
    static func frameBytes(payload: Int) -> UInt64 { UInt64(14 + 20 + 8 + payload) }

    /// Sends one echo request with `payload` bytes of data and waits (at most 2 s) for its reply.
    func ping(payload: Int) throws {
        sequence &+= 1
        var packet = [UInt8](repeating: 0, count: 8 + payload)
        packet[0] = 8  // echo request
        packet[4] = UInt8(identifier >> 8)
        packet[5] = UInt8(identifier & 0xFF)
        packet[6] = UInt8(sequence >> 8)
        packet[7] = UInt8(sequence & 0xFF)
        for index in 8..<packet.count { packet[index] = UInt8(truncatingIfNeeded: index) }
        let checksum = Self.checksum(packet)
        packet[2] = UInt8(checksum >> 8)
        packet[3] = UInt8(checksum & 0xFF)
        var address = destination
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                packet.withUnsafeBytes { sendto(socket, $0.baseAddress, $0.count, 0, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard sent == packet.count else { throw KernelFixtureError("sendto: \(String(cString: strerror(errno)))") }
        // A raw socket sees every ICMP packet of the host: wait for the reply to this request.
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw KernelFixtureError("no echo reply: \(String(cString: strerror(errno)))") }
            // The IPv4 header comes first; then type 0 (echo reply) and our identifier and sequence.
            let icmp = Int(buffer[0] & 0x0F) * 4
            guard count >= icmp + 8 else { continue }
            if buffer[icmp] == 0, buffer[icmp + 4...icmp + 7].elementsEqual(packet[4...7]) { return }
        }
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum &+= UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum &+= UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}
