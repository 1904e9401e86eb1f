/// Which cgroup version a value came from.
public enum CgroupVersion: String, Sendable, Equatable {
    case v1, v2
}

/// Where each resource of a `CgroupUsage` was read; nil where it was not read.
public struct CgroupSources: Sendable, Equatable {
    public var cpu: CgroupVersion?
    public var memory: CgroupVersion?
    public var io: CgroupVersion?

    public init(cpu: CgroupVersion? = nil, memory: CgroupVersion? = nil, io: CgroupVersion? = nil) {
        self.cpu = cpu
        self.memory = memory
        self.io = io
    }
}

/// One instance's usage as its cgroup counts it. A resource whose controller is not enabled for
/// the cgroup is nil, not an error.
public struct CgroupUsage: Sendable, Equatable {
    /// CPU time of all the cgroup's tasks, descendants included.
    public var cpuNanoseconds: UInt64?
    public var memoryBytes: UInt64?
    /// nil when there is no limit: v2's "max", or v1's "unlimited" (a value of 2^62 or more; the
    /// kernel prints PAGE_COUNTER_MAX in bytes, 9223372036854771712 with 4 KiB pages).
    public var memoryLimitBytes: UInt64?
    public var ioReadBytes: UInt64?
    public var ioWriteBytes: UInt64?
    /// The inode of the cgroup directory the CPU time was read from (or, with no CPU time, of the
    /// first directory found). A cgroup removed and created again under the same path gets a new
    /// one, so counters that went back to zero are told from counters that went down.
    public var generation: UInt64
    public var sources: CgroupSources

    public init(
        cpuNanoseconds: UInt64? = nil, memoryBytes: UInt64? = nil, memoryLimitBytes: UInt64? = nil,
        ioReadBytes: UInt64? = nil, ioWriteBytes: UInt64? = nil, generation: UInt64 = 0,
        sources: CgroupSources = CgroupSources()
    ) {
        self.cpuNanoseconds = cpuNanoseconds
        self.memoryBytes = memoryBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.ioReadBytes = ioReadBytes
        self.ioWriteBytes = ioWriteBytes
        self.generation = generation
        self.sources = sources
    }
}

/// Reads an instance's CPU, memory and IO from its cgroup, whichever hierarchies hold them.
///
/// For each resource the v2 file is read when the cgroup has it, else the v1 controller's:
///
/// | resource | cgroup v2 | cgroup v1 |
/// | --- | --- | --- |
/// | CPU | `cpu.stat` usage_usec × 1000 | `cpuacct.usage` (ns) |
/// | memory | `memory.current`, `memory.max` | `memory.usage_in_bytes`, `memory.limit_in_bytes` |
/// | IO | `io.stat` rbytes, wbytes | `blkio.throttle.io_service_bytes_recursive`, then without `_recursive`, then `blkio.io_service_bytes[_recursive]` |
///
/// On a hybrid host the unified tree has no controllers, but its cpu.stat still counts CPU, so CPU
/// comes from v2 and memory and IO from v1. All of these count descendants, except the v1 blkio
/// files without `_recursive`: those are only read on kernels older than the recursive ones (4.16).
/// Since Linux 6.x the v1 blkio.throttle counters only count on a device that has a throttle rule
/// in some cgroup; where none is set they stay 0 (seen on 6.18).
///
/// Each hierarchy's cgroup directory is opened once and its files opened with openat(2): one path
/// walk per hierarchy, and values that all belong to the same cgroup even when it is recreated
/// while being read. With a `KeptCgroup` the files stay open and are re-read with pread(2).
public struct CgroupReader: Sendable {
    public let layout: CgroupLayout
    /// Prepended to every mount point, for fixture trees and an agent that sees the host's / under
    /// another path. "/" reads the mount points themselves.
    public let root: String

    private let unifiedBase: String?
    private let cpuacctBase: String?
    private let memoryBase: String?
    private let blkioBase: String?
    /// Whether v2 memory and io files can exist. A controller is attached to one hierarchy at a
    /// time, so where v1 has memory (blkio) mounted no v2 cgroup has memory.current (io.stat): on a
    /// hybrid host that saves two failed opens per instance.
    private let unifiedMemory: Bool
    private let unifiedIO: Bool
    /// The unified tree's files: cpu.stat always, memory and io files where no v1 hierarchy has
    /// those controllers.
    private let unifiedGroups: [[String]]

    public init(layout: CgroupLayout, root: String = "/") {
        self.layout = layout
        self.root = root
        var prefix = root
        while prefix.hasSuffix("/") { prefix.removeLast() }
        func base(_ mountPoint: String?) -> String? {
            guard var mountPoint else { return nil }
            while mountPoint.count > 1, mountPoint.hasSuffix("/") { mountPoint.removeLast() }
            return mountPoint == "/" ? (prefix.isEmpty ? "/" : prefix) : prefix + mountPoint
        }
        unifiedBase = base(layout.unified)
        cpuacctBase = base(layout.controllers["cpuacct"])
        memoryBase = base(layout.controllers["memory"])
        blkioBase = base(layout.controllers["blkio"])
        unifiedMemory = layout.controllers["memory"] == nil
        unifiedIO = layout.controllers["blkio"] == nil
        var groups = [["cpu.stat"]]
        if unifiedMemory { groups += [["memory.current"], ["memory.max"]] }
        if unifiedIO { groups.append(["io.stat"]) }
        unifiedGroups = groups
    }

    /// The cgroup's directory in the hierarchy mounted at `base`.
    private func directory(_ base: String, _ relative: String) -> String {
        relative.isEmpty ? base : (base == "/" ? "/" + relative : base + "/" + relative)
    }

    /// `path` without leading or doubled slashes, refusing `.` and `..` components that would leave
    /// the hierarchy.
    ///
    /// Split at the byte '/', as the kernel walks a path: a String splits at Characters, and a '/'
    /// followed by a combining mark is one Character, so "/\u{301}" kept its leading '/' and
    /// "../\u{301}x" its `..` (fuzz target cgroup_path; see FuzzRegressionTests).
    static func normalize(_ path: String) throws(ProbeError) -> String {
        let components = path.utf8.split(separator: UInt8(ascii: "/"))
        for component in components where component.elementsEqual(".".utf8) || component.elementsEqual("..".utf8) {
            throw .invalid(path: path, reason: "a cgroup path may not contain '\(String(decoding: component, as: UTF8.self))'")
        }
        return components.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }

    /// The usage of the cgroup at `path`, relative to the hierarchies' roots as /proc/PID/cgroup
    /// prints it ("machine.slice/machine-qemu\\x2d1\\x2dvm42.scope"; a leading "/" is allowed).
    ///
    /// Throws `.missing` (`isMissing`) when no hierarchy has the cgroup: the instance is not
    /// running. A file that cannot be parsed throws `.malformed` naming it. Opens and closes every
    /// file; `read(_:kept:buffer:)` keeps them open between reads.
    public func read(_ path: String) throws(ProbeError) -> CgroupUsage {
        try read(path, kept: KeptCgroup(), buffer: ReadBuffer(capacity: 1024))
    }

    /// As `read(_:)`, through the descriptors `kept` holds from earlier reads of the same path:
    /// each file is read again with pread(2) and, once a descriptor fails (the cgroup was removed,
    /// perhaps created again), the cgroup's directory is opened again by path, so the values and
    /// the generation are those of the cgroup that is there now.
    public func read(_ path: String, kept: KeptCgroup, buffer: ReadBuffer) throws(ProbeError) -> CgroupUsage {
        if kept.path != path {
            let relative = try Self.normalize(path)
            kept.reset(
                path: path,
                directories: [unifiedBase, cpuacctBase, memoryBase, blkioBase].map { $0.map { directory($0, relative) } })
        }
        guard unifiedBase != nil || cpuacctBase != nil || memoryBase != nil || blkioBase != nil else {
            throw .invalid(path: path, reason: "no cgroup hierarchy (cgroup2, or v1 cpuacct, memory or blkio) is mounted")
        }
        var usage = CgroupUsage()
        var generation: UInt64?
        var firstInode: UInt64?
        let directories = kept.directories

        if let directory = directories[KeptCgroup.unified] {
            var cpu: UInt64?
            var memory: UInt64?
            var memoryLimit: UInt64?
            var io: CgroupIOBytes?
            let inode = try kept.read(KeptCgroup.unified, directory, groups: unifiedGroups, buffer: buffer) {
                (name, bytes, file) throws(ProbeError) in
                switch name {
                case "cpu.stat": cpu = try CgroupFiles.parseCPUStat(bytes, path: file)
                case "memory.current": memory = try SingleValue.parseCounter(bytes, path: file)
                // Read only for a cgroup with memory.current, as before files were kept.
                case "memory.max" where memory != nil: memoryLimit = try Self.limit(bytes, path: file)
                case "io.stat": io = try CgroupFiles.parseIOStat(bytes, path: file)
                default: break
                }
            }
            if let inode {
                firstInode = inode
                if let cpu {
                    usage.cpuNanoseconds = cpu
                    usage.sources.cpu = .v2
                    generation = inode
                }
                if let memory {
                    usage.memoryBytes = memory
                    usage.memoryLimitBytes = memoryLimit
                    usage.sources.memory = .v2
                }
                if let io {
                    usage.ioReadBytes = io.readBytes
                    usage.ioWriteBytes = io.writeBytes
                    usage.sources.io = .v2
                }
            }
        }
        if usage.sources.cpu == nil, let directory = directories[KeptCgroup.cpuacct] {
            var cpu: UInt64?
            let inode = try kept.read(KeptCgroup.cpuacct, directory, groups: [["cpuacct.usage"]], buffer: buffer) {
                (_, bytes, file) throws(ProbeError) in cpu = try SingleValue.parseCounter(bytes, path: file)
            }
            if let inode {
                if firstInode == nil { firstInode = inode }
                if let cpu {
                    usage.cpuNanoseconds = cpu
                    usage.sources.cpu = .v1
                    generation = inode
                }
            }
        }
        if usage.sources.memory == nil, let directory = directories[KeptCgroup.memory] {
            var memory: UInt64?
            var memoryLimit: UInt64?
            let inode = try kept.read(KeptCgroup.memory, directory, groups: Self.memoryV1Groups, buffer: buffer) {
                (name, bytes, file) throws(ProbeError) in
                if name == "memory.usage_in_bytes" {
                    memory = try SingleValue.parseCounter(bytes, path: file)
                } else if memory != nil {
                    memoryLimit = try Self.limit(bytes, path: file)
                }
            }
            if let inode {
                if firstInode == nil { firstInode = inode }
                if let memory {
                    usage.memoryBytes = memory
                    usage.memoryLimitBytes = memoryLimit
                    usage.sources.memory = .v1
                }
            }
        }
        if usage.sources.io == nil, let directory = directories[KeptCgroup.blkio] {
            var io: CgroupIOBytes?
            let inode = try kept.read(KeptCgroup.blkio, directory, groups: [Self.blkioFiles], buffer: buffer) {
                (_, bytes, file) throws(ProbeError) in io = try CgroupFiles.parseBlkioServiceBytes(bytes, path: file)
            }
            if let inode {
                if firstInode == nil { firstInode = inode }
                if let io {
                    usage.ioReadBytes = io.readBytes
                    usage.ioWriteBytes = io.writeBytes
                    usage.sources.io = .v1
                }
            }
        }
        guard let found = generation ?? firstInode else {
            let first = directories.lazy.compactMap { $0 }.first ?? "/"
            throw .missing(path: first)
        }
        usage.generation = found
        return usage
    }

    static let memoryV1Groups = [["memory.usage_in_bytes"], ["memory.limit_in_bytes"]]

    /// v1 blkio files in order of preference. The recursive ones count the cgroup's descendants
    /// like every other value read here (a VM manager may put QEMU's threads in child cgroups);
    /// blkio.io_service_bytes is CFQ's (before 5.0), the throttle files every kernel's since 3.x.
    static let blkioFiles = [
        "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive", "blkio.io_service_bytes",
    ]

    /// A memory limit, nil for none: "max", or v1's page-counter maximum.
    static func limit(_ bytes: [UInt8], path: String) throws(ProbeError) -> UInt64? {
        guard let value = try SingleValue.parse(bytes, path: path), value < 1 << 62 else { return nil }
        return value
    }
}
