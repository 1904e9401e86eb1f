import Foundation
import Probes

#if canImport(Glibc)
import Glibc
#endif

/// `count` VMs made of the running kernel's objects (`instances --kernel`): a real cgroup per VM
/// in every hierarchy the probes read, a veth pair per VM in a network namespace the bench makes,
/// a sparse image and a manifest per VM in a scratch directory. Needs root.
///
/// - Cgroups: `hmbench-<pid>.slice/vm-NNNNN.scope` under each hierarchy's mount point. `v2` is
///   the cgroup2 tree for CPU, with memory and IO from the v1 memory and blkio hierarchies where
///   the cgroup2 tree lacks those controllers (a hybrid host such as this one: its cgroup2 tree has
///   no memory or io controller); `v1` is the cpuacct, memory and blkio hierarchies.
/// - Taps: veth pairs `hmtNNNNN`/`hmpNNNNN`, both ends in the namespace `hmbench-<pid>`, made with
///   one `ip -n … -batch` and no address anywhere. The namespace's own sysfs is mounted at
///   `<scratch>/sys` by `nsenter --net` (a sysfs shows the network namespace of whoever mounted
///   it), in the host's mount namespace, so the bench keeps the host's /sys and its
///   /sys/fs/cgroup, which `ip netns exec` or an unshare of the mount namespace with a fresh /sys
///   would hide. The probe reads interfaces under that mount as the agent reads /sys/class/net.
/// - The counters are the kernel's; no VM runs, so they stay where they are, which changes what
///   reading them costs little (cpu.stat flushes pending per-CPU updates first: busy cgroups cost
///   somewhat more).
///
/// Everything is removed by `remove()`, also when making it failed half-way; what a killed run
/// left (its pid no longer alive) is removed by `removeLeftovers()` at the next start.
final class KernelHost: BenchHost {
    static let prefix = "hmbench-"
    static let scratchPrefix = "hostmeter-bench-kernel-"

    let count: Int
    /// Manifests, images and the namespace's sysfs mount.
    let scratch: String
    let namespace: String
    let slice: String
    /// The layout the probe reads with: mount points as on the host.
    let layout: CgroupLayout
    /// Where the slice was made: each hierarchy's mount point, once.
    private var madeIn: [String] = []
    private var namespaceMade = false
    private var sysMounted = false
    private var removed = false

    var manifests: String { scratch + "/instances.d" }
    var sys: String { scratch + "/sys" }

    static func name(_ index: Int) -> String { GeneratedHost.name(index) }
    static func tap(_ index: Int) -> String { "hmt" + String(GeneratedHost.name(index).dropFirst(3)) }
    static func peer(_ index: Int) -> String { "hmp" + String(GeneratedHost.name(index).dropFirst(3)) }

    init(directory: String, layout kind: InstanceBench.Layout, count: Int) throws {
        guard geteuid() == 0 else { throw BenchFailure("--kernel needs root: it makes cgroups, a network namespace and veths") }
        let pid = getpid()
        self.count = count
        self.scratch = directory + "/" + Self.scratchPrefix + String(pid)
        self.namespace = Self.prefix + String(pid)
        self.slice = Self.prefix + String(pid) + ".slice"
        self.layout = try Self.layout(kind)
        do {
            try make()
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    /// The layout for `kind` from this host's mount table.
    static func layout(_ kind: InstanceBench.Layout) throws -> CgroupLayout {
        let host = CgroupLayout.detect(try ProcFS().mountinfo())
        switch kind {
        case .v2:
            guard let unified = host.unified else { throw BenchFailure("--kernel --layout v2: no cgroup2 hierarchy is mounted") }
            let controllers = (try? String(contentsOfFile: unified + "/cgroup.controllers", encoding: .utf8)) ?? ""
            let enabled = Set(controllers.split(whereSeparator: \.isWhitespace).map(String.init))
            var layout = CgroupLayout(unified: unified)
            if !enabled.contains("memory") { layout.controllers["memory"] = host.controllers["memory"] }
            if !enabled.contains("io") { layout.controllers["blkio"] = host.controllers["blkio"] }
            return layout
        case .v1:
            var layout = CgroupLayout()
            for controller in ["cpuacct", "memory", "blkio"] {
                guard let mount = host.controllers[controller] else {
                    throw BenchFailure("--kernel --layout v1: no v1 \(controller) hierarchy is mounted")
                }
                layout.controllers[controller] = mount
            }
            return layout
        }
    }

    private func make() throws {
        for directory in [scratch, manifests, scratch + "/images", sys] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var mounts: [String] = []
        for mount in [layout.unified].compactMap({ $0 }) + layout.controllers.values.sorted() where !mounts.contains(mount) {
            mounts.append(mount)
        }
        for mount in mounts {
            try Self.mkdir(mount + "/" + slice)
            madeIn.append(mount)
            for index in 0..<count { try Self.mkdir(mount + "/" + cgroup(index)) }
        }

        try Self.ip(["netns", "add", namespace])
        namespaceMade = true
        let batch = scratch + "/veths.batch"
        let lines = (0..<count).map { "link add \(Self.tap($0)) type veth peer name \(Self.peer($0))\n" }.joined()
        try lines.write(toFile: batch, atomically: false, encoding: .utf8)
        if count > 0 { try Self.ip(["-n", namespace, "-batch", batch]) }
        try mountNamespaceSysfs()

        for index in 0..<count {
            let image = scratch + "/images/\(Self.name(index)).img"
            try GeneratedHost.sparseImage(image, blocks: index % 8 + 1)
            try GeneratedHost.put(
                manifests + "/\(Self.name(index)).yaml",
                """
                instance_id: \(Self.name(index))
                user_id: user-\(index % 97)
                org_id: org-\(index % 13)
                cgroup: \(cgroup(index))
                interfaces: [\(Self.tap(index))]
                disks: [\(image)]
                vcpus: \(index % 4 + 1)

                """)
        }
    }

    func cgroup(_ index: Int) -> String { slice + "/" + Self.name(index) + ".scope" }

    func probe() throws -> InstanceProbe { InstanceProbe(layout: layout, sys: SysFS(root: sys), rootfs: "/") }

    /// Nothing to write: the kernel keeps the counters.
    func writeCounters(sample index: Int) throws {}

    /// Mounts the namespace's sysfs at `sys` with util-linux's `nsenter --net`: the mount(2) runs
    /// in the namespace's network namespace and the host's mount namespace, so the bench sees it
    /// and keeps its /sys/fs/cgroup.
    private func mountNamespaceSysfs() throws {
        try Self.run(
            Self.tool("nsenter", "util-linux"),
            ["--net=/run/netns/" + namespace, "mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", sys])
        sysMounted = true
    }

    /// Removes everything made; safe to call more than once.
    func remove() {
        guard !removed else { return }
        removed = true
        if sysMounted { _ = umount2(sys, Int32(MNT_DETACH)) }
        if namespaceMade { _ = try? Self.ip(["netns", "delete", namespace]) }
        for mount in madeIn { Self.removeSlice(mount + "/" + slice) }
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// Removes what runs killed before their end left: slices, namespaces and scratch directories
    /// named after a pid that is no longer alive.
    static func removeLeftovers(directory: String) {
        // Gone, or a zombie its parent has not reaped yet (a killed run's objects are orphans then).
        func dead(_ name: Substring) -> Bool {
            guard let pid = pid_t(name), pid != getpid() else { return false }
            if kill(pid, 0) != 0 { return errno == ESRCH }
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            return stat[close...].dropFirst(2).first == "Z"
        }
        let mounts = (try? ProcFS().mountinfo()) ?? []
        for mount in mounts where mount.mountPoint.contains("/" + scratchPrefix) {
            let pid = mount.mountPoint.split(separator: "/").first { $0.hasPrefix(scratchPrefix) }?.dropFirst(scratchPrefix.count)
            if let pid, dead(pid) { _ = umount2(mount.mountPoint, Int32(MNT_DETACH)) }
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where entry.hasPrefix(scratchPrefix) && dead(entry.dropFirst(scratchPrefix.count)) {
            try? FileManager.default.removeItem(atPath: directory + "/" + entry)
        }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        where entry.hasPrefix(prefix) && dead(entry.dropFirst(prefix.count)) {
            _ = try? ip(["netns", "delete", entry])
        }
        for mount in mounts where mount.fsType == "cgroup" || mount.fsType == "cgroup2" {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: mount.mountPoint)) ?? []
            where entry.hasPrefix(prefix) && entry.hasSuffix(".slice") && dead(entry.dropFirst(prefix.count).dropLast(6)) {
                removeSlice(mount.mountPoint + "/" + entry)
            }
        }
    }

    /// rmdir of each (empty) child cgroup, then of the slice.
    private static func removeSlice(_ path: String) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where entry.hasSuffix(".scope") {
            _ = rmdir(path + "/" + entry)
        }
        _ = rmdir(path)
    }

    private static func mkdir(_ path: String) throws {
        guard Glibc.mkdir(path, 0o755) == 0 else { throw BenchFailure("mkdir \(path): errno \(errno)") }
    }

    /// Runs iproute2's `ip`; throws with its error output when it fails.
    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        try run(tool("ip", "iproute2"), arguments)
    }

    /// The path of `name` in the system's binary directories.
    static func tool(_ name: String, _ package: String) throws -> String {
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where access(directory + "/" + name, X_OK) == 0 {
            return directory + "/" + name
        }
        throw BenchFailure("--kernel needs \(package)'s \(name)")
    }

    /// Runs `tool` and returns its output; throws with the output when it fails.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw BenchFailure("\(tool) \(arguments.prefix(4).joined(separator: " ")) failed: \(text.prefix(400))")
        }
        return text
    }
}
