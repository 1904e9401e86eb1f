import Testing

@testable import Probes

struct CgroupReaderTests {
    private func reader(_ tree: String) throws -> CgroupReader {
        CgroupReader(layout: try Fixtures.layout(tree), root: tree)
    }

    // MARK: Unified (v2)

    @Test func unifiedReadsEverythingFromV2() throws {
        let usage = try reader(Fixtures.cgroupV2).read(Fixtures.vm42)
        let directory = Fixtures.cgroupV2 + "/sys/fs/cgroup/" + Fixtures.vm42
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 8_123_456_789_000, memoryBytes: 4_337_917_952, memoryLimitBytes: 8_589_934_592,
                    ioReadBytes: 1_343_488 + 734_003_200, ioWriteBytes: 1_073_741_824,
                    generation: try Fixtures.inode(directory), sources: CgroupSources(cpu: .v2, memory: .v2, io: .v2)))
    }

    @Test func unifiedMaxIsNoLimitAndAnEmptyIOStatIsZero() throws {
        let usage = try reader(Fixtures.cgroupV2).read(Fixtures.vm43)
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 120_000_000, memoryBytes: 268_435_456, memoryLimitBytes: nil, ioReadBytes: 0,
                    ioWriteBytes: 0, generation: try Fixtures.inode(Fixtures.cgroupV2 + "/sys/fs/cgroup/" + Fixtures.vm43),
                    sources: CgroupSources(cpu: .v2, memory: .v2, io: .v2)))
    }

    // MARK: Legacy (v1)

    @Test func legacyReadsEachControllersHierarchy() throws {
        let usage = try reader(Fixtures.cgroupV1).read(Fixtures.vm42)
        // The recursive blkio file, not the one counting only the cgroup's own tasks (4096/8192).
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 8_123_456_789_012, memoryBytes: 4_338_012_160, memoryLimitBytes: 8_589_934_592,
                    ioReadBytes: 734_003_200 + 1_343_488, ioWriteBytes: 1_073_741_824,
                    generation: try Fixtures.inode(Fixtures.cgroupV1 + "/sys/fs/cgroup/cpu,cpuacct/" + Fixtures.vm42),
                    sources: CgroupSources(cpu: .v1, memory: .v1, io: .v1)))
    }

    @Test func legacyUnlimitedIsNoLimit() throws {
        let usage = try reader(Fixtures.cgroupV1).read(Fixtures.vm43)
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 120_000_123, memoryBytes: 268_697_600, memoryLimitBytes: nil, ioReadBytes: 0,
                    ioWriteBytes: 0,
                    generation: try Fixtures.inode(Fixtures.cgroupV1 + "/sys/fs/cgroup/cpu,cpuacct/" + Fixtures.vm43),
                    sources: CgroupSources(cpu: .v1, memory: .v1, io: .v1)))
    }

    // MARK: Hybrid

    @Test func hybridTakesCPUFromTheUnifiedTreeAndTheRestFromV1() throws {
        let usage = try reader(Fixtures.cgroupHybrid).read(Fixtures.vm42)
        // cpuacct.usage says 4999000777: the unified tree's usage_usec wins.
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 5_000_123_000, memoryBytes: 2_319_069_184, memoryLimitBytes: nil,
                    ioReadBytes: 1_048_576, ioWriteBytes: 1_048_576,
                    generation: try Fixtures.inode(Fixtures.cgroupHybrid + "/sys/fs/cgroup/unified/" + Fixtures.vm42),
                    sources: CgroupSources(cpu: .v2, memory: .v1, io: .v1)))
    }

    @Test func hybridFallsBackToCPUAcctWithoutAUnifiedCgroup() throws {
        let usage = try reader(Fixtures.cgroupHybrid).read(Fixtures.vm43)
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 17_082_542, memoryBytes: 389_120, memoryLimitBytes: 1_073_741_824, ioReadBytes: 0,
                    ioWriteBytes: 0,
                    generation: try Fixtures.inode(Fixtures.cgroupHybrid + "/sys/fs/cgroup/cpu,cpuacct/" + Fixtures.vm43),
                    sources: CgroupSources(cpu: .v1, memory: .v1, io: .v1)))
    }

    // MARK: Paths

    @Test(arguments: ["/" + Fixtures.vm42, "//machine.slice//" + Fixtures.vm42.dropFirst("machine.slice/".count) + "/"])
    func slashesAroundThePathDoNotMatter(path: String) throws {
        let reader = try reader(Fixtures.cgroupV2)
        #expect(try reader.read(path) == reader.read(Fixtures.vm42))
    }

    @Test func aRootWithATrailingSlashReadsTheSame() throws {
        let slashed = CgroupReader(layout: try Fixtures.layout(Fixtures.cgroupV1), root: Fixtures.cgroupV1 + "/")
        #expect(try slashed.read(Fixtures.vm42) == reader(Fixtures.cgroupV1).read(Fixtures.vm42))
    }

    @Test(arguments: ["../etc", "machine.slice/../../x", "./machine.slice", "a/./b"])
    func dotComponentsAreRefused(path: String) throws {
        let reader = try reader(Fixtures.cgroupV2)
        #expect(throws: ProbeError.invalid(path: path, reason: "a cgroup path may not contain '\(path.contains("..") ? ".." : ".")'")) {
            try reader.read(path)
        }
    }

    // MARK: Missing

    @Test(arguments: [Fixtures.cgroupV2, Fixtures.cgroupV1, Fixtures.cgroupHybrid])
    func aCgroupInNoHierarchyIsMissing(tree: String) throws {
        let gone = #"machine.slice/machine-qemu\x2d9\x2dgone.scope"#
        let reader = try reader(tree)
        do throws(ProbeError) {
            let usage = try reader.read(gone)
            Issue.record("expected missing, read \(usage)")
        } catch {
            #expect(error.isMissing)
            let first = tree == Fixtures.cgroupV2 ? "/sys/fs/cgroup" : tree == Fixtures.cgroupV1 ? "/sys/fs/cgroup/cpu,cpuacct" : "/sys/fs/cgroup/unified"
            #expect(error == .missing(path: tree + first + "/" + gone))
            #expect(error.description == tree + first + "/" + gone + " does not exist")
        }
    }

    @Test func withNoHierarchyMountedNothingIsMissingButNothingCanBeRead() {
        let reader = CgroupReader(layout: CgroupLayout(), root: Fixtures.cgroupV2)
        do throws(ProbeError) {
            _ = try reader.read(Fixtures.vm42)
            Issue.record("expected an error")
        } catch {
            #expect(!error.isMissing)
            guard case .invalid = error else {
                Issue.record("expected .invalid, got \(error)")
                return
            }
        }
    }

    // MARK: Controllers not enabled, older kernels

    @Test func aV2CgroupWithoutMemoryOrIOControllersHasOnlyCPU() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("cg/vm/cpu.stat", "usage_usec 7\nuser_usec 7\nsystem_usec 0\n")
        try tree.write("cg/vm/cgroup.controllers", "")
        let usage = try CgroupReader(layout: CgroupLayout(unified: "/cg"), root: tree.root).read("vm")
        #expect(
            usage
                == CgroupUsage(
                    cpuNanoseconds: 7000, generation: try Fixtures.inode(tree.root + "/cg/vm"),
                    sources: CgroupSources(cpu: .v2)))
    }

    @Test func aControllerMountedInV1IsNotLookedForInV2() throws {
        // The kernel attaches a controller to one hierarchy only: with memory and blkio in v1, the
        // unified tree has no memory.current or io.stat, so they are not even tried there.
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("cg/vm/cpu.stat", "usage_usec 1\n")
        try tree.write("cg/vm/memory.current", "1\n")
        try tree.write("cg/vm/io.stat", "8:0 rbytes=1 wbytes=1\n")
        try tree.write("memory/vm/memory.usage_in_bytes", "2\n")
        try tree.write("blkio/vm/blkio.throttle.io_service_bytes_recursive", "8:0 Read 2\n8:0 Write 2\nTotal 4\n")
        let layout = CgroupLayout(unified: "/cg", controllers: ["memory": "/memory", "blkio": "/blkio"])
        let usage = try CgroupReader(layout: layout, root: tree.root).read("vm")
        #expect(usage.memoryBytes == 2)
        #expect(usage.ioReadBytes == 2)
        #expect(usage.sources == CgroupSources(cpu: .v2, memory: .v1, io: .v1))
    }

    @Test func aCgroupOnlyInTheMemoryHierarchyTakesItsGenerationFromThere() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.makeDirectory("cpuacct")
        try tree.write("memory/vm/memory.usage_in_bytes", "4096\n")
        try tree.write("memory/vm/memory.limit_in_bytes", "8192\n")
        let layout = CgroupLayout(controllers: ["cpuacct": "/cpuacct", "memory": "/memory"])
        let usage = try CgroupReader(layout: layout, root: tree.root).read("vm")
        #expect(
            usage
                == CgroupUsage(
                    memoryBytes: 4096, memoryLimitBytes: 8192, generation: try Fixtures.inode(tree.root + "/memory/vm"),
                    sources: CgroupSources(memory: .v1)))
    }

    @Test(arguments: [
        (["blkio.throttle.io_service_bytes"], 1),
        (["blkio.io_service_bytes_recursive", "blkio.io_service_bytes"], 3),
        (["blkio.io_service_bytes"], 4),
        (["blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes", "blkio.io_service_bytes"], 0),
    ] as [([String], UInt64)])
    func blkioFilesArePreferredRecursiveThenThrottle(present: [String], expectedRead: UInt64) throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let reads = [
            "blkio.throttle.io_service_bytes_recursive": 0, "blkio.throttle.io_service_bytes": 1,
            "blkio.io_service_bytes_recursive": 3, "blkio.io_service_bytes": 4,
        ]
        for name in present {
            try tree.write("blkio/vm/" + name, "8:0 Read \(reads[name]!)\n8:0 Write 0\nTotal \(reads[name]!)\n")
        }
        let usage = try CgroupReader(layout: CgroupLayout(controllers: ["blkio": "/blkio"]), root: tree.root).read("vm")
        #expect(usage.ioReadBytes == expectedRead)
        #expect(usage.sources == CgroupSources(io: .v1))
    }

    // MARK: Broken files

    @Test(arguments: [
        ("cpu.stat", "usage_usec lots\n", 1),
        ("memory.current", "-4096\n", 1),
        ("memory.max", "unlimited\n", 1),
        ("io.stat", "8:0 rbytes=1\n", 1),
    ])
    func aBrokenFileIsMalformedNamingItsFullPath(file: String, text: String, line: Int) throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let good = [
            "cpu.stat": "usage_usec 1\n", "memory.current": "1\n", "memory.max": "max\n",
            "io.stat": "8:0 rbytes=1 wbytes=2\n",
        ]
        for (name, content) in good { try tree.write("cg/vm/" + name, name == file ? text : content) }
        let reader = CgroupReader(layout: CgroupLayout(unified: "/cg"), root: tree.root)
        expectMalformed(path: tree.root + "/cg/vm/" + file, line: line) { () throws(ProbeError) in
            try reader.read("vm")
        }
    }

    @Test func aBrokenV1BlkioFileIsMalformedNamingIt() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("blkio/vm/blkio.throttle.io_service_bytes_recursive", "8:0 Read 1\n8:0 Write\n")
        let reader = CgroupReader(layout: CgroupLayout(controllers: ["blkio": "/blkio"]), root: tree.root)
        expectMalformed(path: tree.root + "/blkio/vm/blkio.throttle.io_service_bytes_recursive", line: 2) {
            () throws(ProbeError) in try reader.read("vm")
        }
    }
}
