import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

/// The descriptors this process holds open on paths under `prefix`, found by reading the links in
/// /proc/self/fd, so tests running in parallel with other descriptors do not disturb the count.
func openDescriptors(under prefix: String) -> Int {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return -1 }
    var count = 0
    var buffer = [CChar](repeating: 0, count: 4096)
    for entry in entries {
        let length = readlink("/proc/self/fd/" + entry, &buffer, buffer.count - 1)
        guard length > 0 else { continue }
        let target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix(prefix) { count += 1 }
    }
    return count
}

struct KeptFileTests {
    /// Rewrites a file in place (the same inode), as the kernel's files change under a descriptor.
    private func overwrite(_ path: String, _ text: String) throws {
        let descriptor = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        try #require(bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } == bytes.count)
    }

    @Test func aKeptFileReadsChangedContentThroughOneDescriptor() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("value", "1\n")
        let kept = KeptPath(tree.root + "/value", capacity: 64)
        #expect(try kept.read(SingleValue.parseCounter(_:path:)) == 1)
        #expect(kept.isOpen)
        for value in [22, 333, 4] {
            try overwrite(tree.root + "/value", "\(value)\n")
            #expect(try kept.read(SingleValue.parseCounter(_:path:)) == UInt64(value))
        }
        #expect(openDescriptors(under: tree.root) == 1)
        kept.close()
        #expect(openDescriptors(under: tree.root) == 0)
    }

    @Test func aReplacedFileIsOpenedAgainAndARemovedOneIsUnreadable() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let path = tree.root + "/value"
        try tree.write("value", "7\n")
        let kept = KeptPath(path)
        #expect(try kept.read(SingleValue.parseCounter(_:path:)) == 7)
        // Replaced by a rename: the old inode has no link left, so the path is opened again.
        try tree.write("new", "8\n")
        try #require(rename(tree.root + "/new", path) == 0)
        #expect(try kept.read(SingleValue.parseCounter(_:path:)) == 8)
        #expect(openDescriptors(under: tree.root) == 1)
        try #require(unlink(path) == 0)
        #expect(throws: ProbeError.unreadable(path: path, errno: ENOENT)) { try kept.read(SingleValue.parseCounter(_:path:)) }
        #expect(!kept.isOpen)
    }

    @Test func theBufferGrowsForALargeFileAndStopsAtTheLimit() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let line = "8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"
        try tree.write("io.stat", String(repeating: line, count: 400))
        let kept = KeptPath(tree.root + "/io.stat", capacity: 64)
        #expect(try kept.read(CgroupFiles.parseIOStat(_:path:)) == CgroupIOBytes(readBytes: 400, writeBytes: 800))
        // Read again with the grown buffer: the same whole file.
        #expect(try kept.read(CgroupFiles.parseIOStat(_:path:)) == CgroupIOBytes(readBytes: 400, writeBytes: 800))
        let capped = KeptPath(tree.root + "/io.stat", capacity: 64, limit: 1024)
        #expect(throws: ProbeError.tooLarge(path: tree.root + "/io.stat", limit: 1024)) {
            try capped.read(CgroupFiles.parseIOStat(_:path:))
        }
    }

    @Test(arguments: [Fixtures.cgroupV2, Fixtures.cgroupV1, Fixtures.cgroupHybrid])
    func keptInstancesReadWhatFreshReadsDoAndCloseWhenAnInstanceGoes(fixture: String) throws {
        // A copy, so that no other test's reads of the fixture count among the descriptors.
        let scratch = try TemporaryTree()
        defer { withExtendedLifetime(scratch) {} }
        let tree = scratch.root + "/tree"
        try FileManager.default.copyItem(atPath: fixture, toPath: tree)
        let probe = try InstanceProbe.detect(procRoot: tree + "/proc", sysRoot: tree + "/sys", rootfs: tree)
        let target = InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["vnet0", "vnet1"])
        let kept = KeptInstances()
        let fresh = probe.probe(target)
        #expect(kept.probe(probe, id: "vm42", target: target) == fresh)
        #expect(kept.probe(probe, id: "vm42", target: target) == fresh)
        // Four cgroup files (CPU, memory and its limit, IO) and three per tap.
        #expect(kept.descriptorCount == 4 + 2 * 3)
        #expect(openDescriptors(under: tree + "/sys") == 4 + 2 * 3)
        // A tap left out of the manifest closes its three.
        _ = kept.probe(probe, id: "vm42", target: InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["vnet1"]))
        #expect(kept.descriptorCount == 4 + 3)
        kept.retain(only: ["vm42"])
        #expect(kept.count == 1)
        kept.retain(only: [])
        #expect(kept.count == 0)
        #expect(openDescriptors(under: tree + "/sys") == 0)
    }

    @Test func aRemovedAndRecreatedFixtureCgroupIsReadAnewWithANewGeneration() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("cg/vm/cpu.stat", "usage_usec 5\n")
        let reader = CgroupReader(layout: CgroupLayout(unified: "/cg"), root: tree.root)
        let kept = KeptCgroup()
        let buffer = ReadBuffer()
        let first = try reader.read("vm", kept: kept, buffer: buffer)
        #expect(first.cpuNanoseconds == 5000)
        try FileManager.default.removeItem(atPath: tree.root + "/cg/vm")
        #expect(throws: ProbeError.missing(path: tree.root + "/cg/vm")) { try reader.read("vm", kept: kept, buffer: buffer) }
        #expect(kept.descriptorCount == 0)
        try tree.write("cg/vm/cpu.stat", "usage_usec 1\n")
        let second = try reader.read("vm", kept: kept, buffer: buffer)
        #expect(second.cpuNanoseconds == 1000)
        // A disk filesystem may give the new directory the old one's inode number; the kernel's
        // cgroupfs does not (KeptFileKernelTests).
        #expect(second.generation == (try Fixtures.inode(tree.root + "/cg/vm")))
    }

    @Test func aFileThatAppearsInAKeptCgroupIsFound() throws {
        // io.stat missing (no io controller), then there: the kept cpu.stat stays good, and the
        // new file is read from the next read on.
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.write("cg/vm/cpu.stat", "usage_usec 5\n")
        let reader = CgroupReader(layout: CgroupLayout(unified: "/cg"), root: tree.root)
        let kept = KeptCgroup()
        let buffer = ReadBuffer()
        #expect(try reader.read("vm", kept: kept, buffer: buffer).sources == CgroupSources(cpu: .v2))
        #expect(kept.descriptorCount == 1)
        try tree.write("cg/vm/io.stat", "8:0 rbytes=7 wbytes=9\n")
        let usage = try reader.read("vm", kept: kept, buffer: buffer)
        #expect(usage.sources == CgroupSources(cpu: .v2, io: .v2))
        #expect(usage.ioWriteBytes == 9)
        #expect(kept.descriptorCount == 2)
    }

    /// The systemd unit gives the agent descriptors for the default max_instances at 7 kept
    /// descriptors each (4 cgroup files, one tap's 3) beside the reserve for everything else.
    @Test func theUnitsDescriptorLimitCoversTheDefaultInstanceCount() throws {
        let unit = try String(contentsOf: TestPaths.file("systemd/hostmeter.service"), encoding: .utf8)
        let line = try #require(unit.split(separator: "\n").first { $0.hasPrefix("LimitNOFILE=") })
        let limit = try #require(Int(line.dropFirst("LimitNOFILE=".count).split(separator: ":").first ?? ""))
        #expect(limit - DescriptorBudget.reserve >= 4096 * 7)
    }
}
