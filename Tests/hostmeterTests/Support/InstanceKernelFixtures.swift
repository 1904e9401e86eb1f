import Foundation
import Probes
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Real kernel objects and a real `hostmeter run` for InstanceKernelTests: cgroups, a stopped CPU
/// burner, a veth pair whose peer is in a network namespace of its own, ICMP traffic of a known
/// size across it, and the agent as a child process with its API on a free loopback port.
///
/// The kernel objects are trimmed copies of Tests/ProbesTests/Support/KernelFixtures.swift (another
/// test target), using only Probes' public API; they are nested here so that their names cannot
/// meet another file's in this target. Every object has a name unique to the process (its pid and
/// a counter) and is removed by `remove()`/`stop()` or when it is released; removal never throws.
enum InstanceKernelFixtures {
    static let isRoot = geteuid() == 0

    /// This host's layout, from /proc/self/mountinfo; nil when that cannot be read.
    static let hostLayout: CgroupLayout? = try? CgroupLayout.detect(ProcFS().mountinfo())

    private static let counter = Mutex(0)

    /// `prefix` + pid + a per-process counter: "hmh" gives "hmh4242x1". Short enough for an
    /// interface name (15 bytes) with a 3-byte prefix and pids up to 7 digits.
    static func uniqueName(_ prefix: String) -> String {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        return "\(prefix)\(getpid())x\(number)"
    }

    // MARK: What this machine allows

    /// Why no cgroup can be made and removed under `mountPoint` here; nil when one can.
    static func cgroupProblem(under mountPoint: String?, hierarchy: String) -> String? {
        guard isRoot else { return "not root (euid \(geteuid()))" }
        guard let mountPoint else { return "no \(hierarchy) hierarchy in /proc/self/mountinfo" }
        let probe = mountPoint + "/" + uniqueName("hm-agent-check-")
        guard mkdir(probe, 0o755) == 0 else { return "mkdir under \(mountPoint): \(String(cString: strerror(errno)))" }
        guard rmdir(probe) == 0 else { return "rmdir \(probe): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// The cgroup2 tree: /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a unified one.
    static let unifiedCgroupProblem = cgroupProblem(under: hostLayout?.unified, hierarchy: "cgroup2")
    /// The v1 cpuacct hierarchy (legacy and hybrid hosts only).
    static let cpuacctCgroupProblem = cgroupProblem(under: hostLayout?.controllers["cpuacct"], hierarchy: "v1 cpuacct")

    /// The `ip` tool from iproute2, where it is installed.
    static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Why no network namespace with a veth pair can be made here; nil when one can.
    static let networkNamespaceProblem: String? = {
        guard isRoot else { return "not root (euid \(geteuid()))" }
        guard let ipTool else { return "no ip tool (iproute2) in /usr/sbin, /sbin, /usr/bin or /bin" }
        let name = uniqueName("hm-agent-check-")
        do {
            try run([ipTool, "netns", "add", name])
            try run([ipTool, "netns", "delete", name])
        } catch {
            return "\(error)"
        }
        return nil
    }()

    /// For `.enabled(if:)`: true when `problem` is nil, else prints why `test` is skipped (Swift
    /// Testing shows only the trait's fixed comment).
    static func available(_ problem: String?, for test: String) -> Bool {
        guard let problem else { return true }
        print("InstanceKernelTests: skipping \(test): \(problem)")
        return false
    }

    // MARK: Commands and control files

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
            throw FixtureError(
                "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes `text` to an existing file (a cgroup or /proc/sys control file) in one write(2).
    static func write(_ text: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FixtureError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw FixtureError("write '\(text)' to \(path): \(String(cString: strerror(errno)))")
        }
    }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: Cgroups and processes

    /// A cgroup made for a test under one hierarchy's mount point; removed with `remove()` or on release.
    final class TemporaryCgroup {
        let mountPoint: String
        /// The path a manifest's `cgroup` takes: relative to the hierarchy's root.
        let relativePath: String
        var path: String { mountPoint + "/" + relativePath }
        private var removed = false

        init(mountPoint: String, name: String) throws {
            self.mountPoint = mountPoint
            self.relativePath = name
            guard mkdir(mountPoint + "/" + name, 0o755) == 0 else {
                throw FixtureError("mkdir \(mountPoint)/\(name): \(String(cString: strerror(errno)))")
            }
        }

        /// Moves process `pid` (all its threads) into the cgroup.
        func add(_ pid: pid_t) throws { try InstanceKernelFixtures.write("\(pid)\n", to: path + "/cgroup.procs") }

        /// The CPU time its tasks used, in nanoseconds: cpu.stat's usage_usec × 1000 in a cgroup2
        /// tree, cpuacct.usage in a v1 cpuacct hierarchy. The same files the agent reads.
        func cpuNanoseconds() throws -> UInt64 {
            if FileReader.exists(path + "/cpu.stat") {
                return try CgroupFiles.parseCPUStat(FileReader.read(path + "/cpu.stat"), path: path + "/cpu.stat")
            }
            return try SingleValue.parseCounter(FileReader.read(path + "/cpuacct.usage"), path: path + "/cpuacct.usage")
        }

        /// Moves what is left in the cgroup to the hierarchy's root and removes the directory. A
        /// cgroup whose last task just exited can refuse rmdir (EBUSY) for a moment, so it is
        /// retried for 2 s. True when the directory is gone.
        @discardableResult
        func remove() -> Bool {
            guard !removed else { return true }
            if let procs = try? FileReader.read(path + "/cgroup.procs") {
                for pid in String(decoding: procs, as: UTF8.self).split(separator: "\n") {
                    try? InstanceKernelFixtures.write("\(pid)\n", to: mountPoint + "/cgroup.procs")
                }
            }
            for _ in 0..<200 {
                if rmdir(path) == 0 || errno == ENOENT {
                    removed = true
                    return true
                }
                usleep(10_000)
            }
            print("InstanceKernelFixtures: could not remove cgroup \(path): \(String(cString: strerror(errno)))")
            return false
        }

        deinit { remove() }
    }

    /// A child process that stops itself (SIGSTOP) before running `arguments`, so it can be put
    /// into a cgroup before it does anything; killed and reaped on release.
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
            guard status == 0 else { throw FixtureError("posix_spawn /bin/sh: \(String(cString: strerror(status)))") }
            pid = child
            var waitStatus: Int32 = 0
            guard waitpid(child, &waitStatus, WUNTRACED) == child, Self.isStopped(waitStatus) else {
                kill(child, SIGKILL)
                _ = waitpid(child, &waitStatus, 0)
                reaped = true
                throw FixtureError("child \(child) did not stop itself (wait status \(waitStatus))")
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
                throw FixtureError("child \(pid) did not stop (wait status \(waitStatus))")
            }
        }

        /// utime + stime of /proc/PID/stat in nanoseconds: the CPU time the kernel charged the process.
        func cpuNanoseconds() throws -> UInt64 {
            let text = String(decoding: try FileReader.read("/proc/\(pid)/stat"), as: UTF8.self)
            // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
            guard let close = text.lastIndex(of: ")") else { throw FixtureError("/proc/\(pid)/stat has no ')'") }
            let fields = text[text.index(after: close)...].split(separator: " ")
            // After the name: state (3), ppid (4) … utime (14), stime (15).
            guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else {
                throw FixtureError("/proc/\(pid)/stat has no utime and stime")
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

    // MARK: Network

    /// A veth pair: `hostName` in this network namespace, `peerName` moved into a new namespace
    /// `namespace`, with IPv4 addresses on a /30 and IPv6 off on both ends so no neighbour
    /// discovery or MLD adds packets to the counters. Deleting the namespace deletes the pair.
    final class VethPair {
        let namespace: String
        let hostName: String
        let peerName: String
        let hostAddress: String
        let peerAddress: String
        private var removed = false

        init() throws {
            guard let ip = InstanceKernelFixtures.ipTool else { throw FixtureError("no ip tool") }
            namespace = InstanceKernelFixtures.uniqueName("hm-agent-ns-")
            hostName = InstanceKernelFixtures.uniqueName("hmh")
            peerName = InstanceKernelFixtures.uniqueName("hmp")
            // A /30 in 10.224.0.0/12 picked by pid and counter: unlikely to meet a real route, and
            // apart from the 10.240.0.0/12 of ProbesTests' pairs, which may exist at the same time.
            let slot = Int(getpid()) &* 31 &+ Int(hostName.utf8.last ?? 0)
            let base = 0x0AE0_0000 | ((slot & 0x3FFFF) << 2)
            func dotted(_ value: Int) -> String { "\(value >> 24 & 255).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)" }
            hostAddress = dotted(base + 1)
            peerAddress = dotted(base + 2)
            do {
                try InstanceKernelFixtures.run([ip, "netns", "add", namespace])
                try InstanceKernelFixtures.run([ip, "link", "add", hostName, "type", "veth", "peer", "name", peerName])
                try? InstanceKernelFixtures.write("1\n", to: "/proc/sys/net/ipv6/conf/\(hostName)/disable_ipv6")
                try InstanceKernelFixtures.run([ip, "link", "set", peerName, "netns", namespace])
                // Without IPv6 in the kernel there is no file to write, and nothing to silence.
                _ = try? InstanceKernelFixtures.run(
                    [ip, "netns", "exec", namespace, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/\(peerName)/disable_ipv6"])
                try InstanceKernelFixtures.run([ip, "addr", "add", hostAddress + "/30", "dev", hostName])
                try InstanceKernelFixtures.run([ip, "link", "set", hostName, "up"])
                try InstanceKernelFixtures.run([ip, "-n", namespace, "addr", "add", peerAddress + "/30", "dev", peerName])
                try InstanceKernelFixtures.run([ip, "-n", namespace, "link", "set", peerName, "up"])
                try InstanceKernelFixtures.run([ip, "-n", namespace, "link", "set", "lo", "up"])
            } catch {
                remove()
                throw error
            }
        }

        /// The host end's counters as the kernel reports them: the files the agent reads.
        func hostStatistics() throws -> InterfaceCounters { try SysFS().interfaceCounters(hostName) }

        /// The peer's counters as the kernel reports them inside its namespace (/proc/net/dev read there).
        func peerStatistics() throws -> NetDevStats {
            guard let ip = InstanceKernelFixtures.ipTool else { throw FixtureError("no ip tool") }
            let text = try InstanceKernelFixtures.run([ip, "netns", "exec", namespace, "cat", "/proc/net/dev"])
            guard let stats = try NetDev.parse(text).first(where: { $0.name == peerName }) else {
                throw FixtureError("\(peerName) not in \(namespace)'s /proc/net/dev")
            }
            return stats
        }

        /// Deletes the namespace and, if it is still there, the host end; safe to call twice.
        func remove() {
            guard !removed, let ip = InstanceKernelFixtures.ipTool else { return }
            removed = true
            _ = try? InstanceKernelFixtures.run([ip, "netns", "delete", namespace])
            if FileReader.exists("/sys/class/net/" + hostName) {
                _ = try? InstanceKernelFixtures.run([ip, "link", "delete", hostName])
            }
        }

        deinit { remove() }
    }

    /// ICMP over a raw socket (root only). An echo request of `payload` bytes is answered by the
    /// peer's kernel with a reply of the same size: traffic of a known size both ways. An echo
    /// reply sent unasked is dropped by the peer's kernel without an answer: traffic one way only.
    final class ICMPEcho {
        private let socket: Int32
        private let destination: sockaddr_in
        /// Not ProbesTests' (the pid): both may run at once in one test process, and a raw socket
        /// sees every ICMP packet of the host.
        private let identifier = UInt16(truncatingIfNeeded: getpid()) ^ 0x8000
        private var sequence: UInt16 = 0

        init(to address: String) throws {
            let descriptor = Glibc.socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
            guard descriptor >= 0 else { throw FixtureError("raw socket: \(String(cString: strerror(errno)))") }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var destination = sockaddr_in()
            destination.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, address, &destination.sin_addr) == 1 else {
                close(descriptor)
                throw FixtureError("bad address \(address)")
            }
            self.socket = descriptor
            self.destination = destination
        }

        deinit { close(socket) }

        /// Bytes one ICMP message of `payload` bytes puts on an Ethernet link (veth counts frames
        /// without the FCS): Ethernet 14 + IPv4 20 + ICMP 8 header bytes.
        static func frameBytes(payload: Int) -> UInt64 { UInt64(14 + 20 + 8 + payload) }

        /// Sends one echo request with `payload` bytes of data and waits (at most 2 s) for its reply.
        func ping(payload: Int) throws {
            let packet = try send(type: 8, payload: payload)
            // A raw socket sees every ICMP packet of the host: wait for the reply to this request.
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { throw FixtureError("no echo reply: \(String(cString: strerror(errno)))") }
                // The IPv4 header comes first (the source address at bytes 12 to 15); then type 0
                // (echo reply) and our identifier and sequence.
                let icmp = Int(buffer[0] & 0x0F) * 4
                guard count >= icmp + 8 else { continue }
                let source = withUnsafeBytes(of: destination.sin_addr.s_addr) { Array($0) }
                if buffer[12...15].elementsEqual(source), buffer[icmp] == 0,
                    buffer[icmp + 4...icmp + 7].elementsEqual(packet[4...7])
                {
                    return
                }
            }
        }

        /// Sends one echo reply nobody asked for: it reaches the peer, which answers nothing.
        func sendUnansweredReply(payload: Int) throws { _ = try send(type: 0, payload: payload) }

        /// Sends one ICMP echo message (`type` 8 request, 0 reply) and returns it.
        private func send(type: UInt8, payload: Int) throws -> [UInt8] {
            sequence &+= 1
            var packet = [UInt8](repeating: 0, count: 8 + payload)
            packet[0] = type
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
                    packet.withUnsafeBytes {
                        sendto(socket, $0.baseAddress, $0.count, 0, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard sent == packet.count else { throw FixtureError("sendto: \(String(cString: strerror(errno)))") }
            return packet
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

    // MARK: The agent

    /// `hostmeter run` as a child process, in a temporary directory of its own: its configuration,
    /// state directory (database and the file sink's events.jsonl), instances_dir and stderr log.
    /// Periods of 2 s sampled every second; the API on a free loopback port.
    final class Agent {
        enum Exit: Equatable {
            case exited(Int32)
            case signalled(Int32)
            case stillRunning
        }

        typealias Response = LoopbackHTTP.Response

        static let intervalSeconds: Int64 = 2

        let directory: URL
        var configFile: URL { directory.appendingPathComponent("hostmeter.yaml") }
        var stateDirectory: URL { directory.appendingPathComponent("state") }
        var instancesDirectory: URL { directory.appendingPathComponent("instances") }
        var eventsFile: URL { stateDirectory.appendingPathComponent("events.jsonl") }
        private var stderrFile: URL { directory.appendingPathComponent("stderr.log") }
        private var process: Process?
        private var stderrHandle: FileHandle?
        private(set) var port = 0

        /// Makes the directory and writes the configuration; `hostEnabled` keeps host mode on
        /// beside the instances.
        init(hostEnabled: Bool) throws {
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("hostmeter-instance-kernel-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: instancesDirectory, withIntermediateDirectories: true)
            try """
                host_id: instance-kernel-test
                interval_seconds: \(Self.intervalSeconds)
                sample_seconds: 1
                instance_sample_seconds: 1
                state_dir: \(stateDirectory.path)
                instances_dir: \(instancesDirectory.path)
                api:
                  listen: 127.0.0.1:0
                host:
                  enabled: \(hostEnabled)
                gpu:
                  enabled: false
                log:
                  level: info
                """.write(to: configFile, atomically: true, encoding: .utf8)
        }

        /// Writes a manifest into instances_dir as `<instance_id>.yaml`; its path.
        @discardableResult
        func writeManifest(_ id: String, _ body: String) throws -> URL {
            let file = instancesDirectory.appendingPathComponent("\(id).yaml")
            try "instance_id: \(id)\n\(body)".write(to: file, atomically: true, encoding: .utf8)
            return file
        }

        /// Starts `hostmeter run` (without the test's `HOSTMETER_*` or systemd variables) and waits
        /// (at most 30 s) for the port of `msg="API listening" api.port=N`.
        func start() async throws {
            guard FileManager.default.createFile(atPath: stderrFile.path, contents: nil) else {
                throw FixtureError("cannot create \(stderrFile.path)")
            }
            let handle = try FileHandle(forWritingTo: stderrFile)
            stderrHandle = handle
            let process = Process()
            process.executableURL = TestPaths.hostmeter
            process.arguments = ["run", "--config", configFile.path]
            process.environment = ProcessInfo.processInfo.environment.filter { name, _ in
                !name.hasPrefix("HOSTMETER_") && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].contains(name)
            }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = handle
            try process.run()
            self.process = process
            let pattern = #/msg="API listening" api\.port=([0-9]+)/#
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, process.isRunning {
                if let match = stderr.firstMatch(of: pattern), let port = Int(match.1) {
                    self.port = port
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw FixtureError("no API port logged; stderr:\n\(stderr)")
        }

        var isRunning: Bool { process?.isRunning ?? false }

        /// Sends `signal` (SIGHUP, say) to the running agent.
        func signal(_ signal: Int32) {
            if let process, process.isRunning { kill(process.processIdentifier, signal) }
        }

        var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

        /// GET `path` on the agent's API.
        func get(_ path: String) throws -> Response { try LoopbackHTTP.get(port: port, path: path) }

        /// `sampled_at` of `GET /get`: when the agent last sampled; nil before its first sample.
        func sampledAt() throws -> Double? { try get("/get").json["sampled_at"] as? Double }

        /// Polls `condition` every 100 ms for at most `seconds`; whether it came true.
        func wait(within seconds: Double, until condition: () throws -> Bool) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            repeat {
                if try condition() { return true }
                try await Task.sleep(for: .milliseconds(100))
            } while Date() < deadline
            return try condition()
        }

        /// Waits (at most `seconds`) for a sample taken at or after the wall-clock time `time`.
        func waitForSample(atOrAfter time: Double, within seconds: Double) async throws -> Bool {
            try await wait(within: seconds) { (try sampledAt() ?? 0) >= time }
        }

        /// SIGTERM, then how the agent ended within `seconds`.
        func terminate(within seconds: Double) async -> Exit {
            guard let process else { return .stillRunning }
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning, Date() < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if process.isRunning { return .stillRunning }
            process.waitUntilExit()
            return process.terminationReason == .exit
                ? .exited(process.terminationStatus) : .signalled(process.terminationStatus)
        }

        /// SIGKILL if it still runs (a failed test must not leave an agent behind), and the
        /// directory removed.
        func remove() {
            if let process, process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            try? stderrHandle?.close()
            stderrHandle = nil
            try? FileManager.default.removeItem(at: directory)
        }

        deinit { remove() }
    }
}
