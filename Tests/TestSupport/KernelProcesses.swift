public import Foundation
import Probes

#if canImport(Glibc)
public import Glibc
#endif

/// A cgroup made for a test under one hierarchy's mount point; removed with `remove()` or on release.
public final class TemporaryCgroup {
    public let mountPoint: String
    /// The path CgroupReader and a manifest's `cgroup` take: relative to the hierarchy's root.
    public let relativePath: String
    public var path: String { mountPoint + "/" + relativePath }
    private var removed = false

    public init(mountPoint: String, name: String) throws {
        self.mountPoint = mountPoint
        self.relativePath = name
        guard mkdir(mountPoint + "/" + name, 0o755) == 0 else {
            throw TestSupportError("mkdir \(mountPoint)/\(name): \(String(cString: strerror(errno)))")
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    public func add(_ pid: pid_t) throws { try KernelFixtures.write("\(pid)\n", to: path + "/cgroup.procs") }

    /// The content of one of the cgroup's files.
    public func read(_ file: String) throws -> [UInt8] { try FileReader.read(path + "/" + file) }

    /// The CPU time its tasks used, in nanoseconds: cpu.stat's usage_usec × 1000 in a cgroup2
    /// tree, cpuacct.usage in a v1 cpuacct hierarchy. The same files the agent reads.
    public func cpuNanoseconds() throws -> UInt64 {
        if FileReader.exists(path + "/cpu.stat") {
            return try CgroupFiles.parseCPUStat(FileReader.read(path + "/cpu.stat"), path: path + "/cpu.stat")
        }
        return try SingleValue.parseCounter(FileReader.read(path + "/cpuacct.usage"), path: path + "/cpuacct.usage")
    }

    /// Moves what is left in the cgroup to the hierarchy's root and removes the directory. A
    /// cgroup whose last task just exited can refuse rmdir (EBUSY) for a moment, so it is retried
    /// for 2 s. True when the directory is gone.
    @discardableResult
    public func remove() -> Bool {
        guard !removed else { return true }
        if let procs = try? FileReader.read(path + "/cgroup.procs") {
            for pid in String(decoding: procs, as: UTF8.self).split(separator: "\n") {
                try? KernelFixtures.write("\(pid)\n", to: mountPoint + "/cgroup.procs")
            }
        }
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT {
                removed = true
                return true
            }
            usleep(10_000)
        }
        print("KernelFixtures: could not remove cgroup \(path): \(String(cString: strerror(errno)))")
        return false
    }

    deinit { remove() }
}

/// A child process that stops itself (SIGSTOP) before running `arguments`, so it can be put into
/// cgroups before it does anything; killed and reaped on release.
public final class StoppedChild {
    public let pid: pid_t
    private var reaped = false

    /// Starts `/bin/sh -c 'kill -STOP $$; exec "$@"' sh arguments…` and waits until it has stopped.
    public init(_ arguments: [String]) throws {
        let argv = ["/bin/sh", "-c", #"kill -STOP $$; exec "$@""#, "sh"] + arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/sh", nil, nil, &cArguments, environ)
        guard status == 0 else { throw TestSupportError("posix_spawn /bin/sh: \(String(cString: strerror(status)))") }
        pid = child
        var waitStatus: Int32 = 0
        guard waitpid(child, &waitStatus, WUNTRACED) == child, Self.isStopped(waitStatus) else {
            kill(child, SIGKILL)
            _ = waitpid(child, &waitStatus, 0)
            reaped = true
            throw TestSupportError("child \(child) did not stop itself (wait status \(waitStatus))")
        }
    }

    /// A child that will spin on the CPU in the shell once resumed.
    public static func cpuBurner() throws -> StoppedChild { try StoppedChild(["/bin/sh", "-c", "while :; do :; done"]) }

    public func resume() { kill(pid, SIGCONT) }

    /// Stops the child and waits until it has stopped, so its counters hold still.
    public func pause() throws {
        kill(pid, SIGSTOP)
        var waitStatus: Int32 = 0
        guard waitpid(pid, &waitStatus, WUNTRACED) == pid, Self.isStopped(waitStatus) else {
            throw TestSupportError("child \(pid) did not stop (wait status \(waitStatus))")
        }
    }

    /// Waits at most `timeout` seconds for the child to exit; its exit status, or nil on timeout
    /// or when it was killed by a signal.
    public func waitForExit(timeout: Double) -> Int32? {
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
    public func cpuNanoseconds() throws -> UInt64 {
        let text = String(decoding: try FileReader.read("/proc/\(pid)/stat"), as: UTF8.self)
        // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
        guard let close = text.lastIndex(of: ")") else { throw TestSupportError("/proc/\(pid)/stat has no ')'") }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the name: state (3), ppid (4) … utime (14), stime (15).
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else {
            throw TestSupportError("/proc/\(pid)/stat has no utime and stime")
        }
        return (user + system) * 1_000_000_000 / UInt64(HostSamplerConfiguration.systemUserHZ)
    }

    /// Kills and reaps the child; safe to call twice.
    public func stop() {
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
