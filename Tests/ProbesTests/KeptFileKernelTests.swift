import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

/// Kept files on the running kernel's cgroupfs and sysfs: a kept descriptor follows changes of
/// its file, fails once its object is removed, and the object made again under the same name is
/// read through new descriptors.
@Suite(.serialized)
struct KeptFileKernelTests {
    /// The kept mountinfo is read only when the kernel says the mount table changed (POLLPRI):
    /// a mount and an unmount made here are both seen at the next read, and an unchanged table is
    /// not read. Other tests may mount meanwhile (network namespaces), so "unchanged" is only
    /// required to be seen once, and what is checked after a change is the content.
    @Test(.enabled(if: KernelFixtures.isRoot, "needs root to mount a tmpfs"))
    func aKeptMountinfoIsReadAgainOnlyWhenTheMountTableChanges() throws {
        let mountinfo = KeptPath("/proc/self/mountinfo")
        let table = { (bytes: [UInt8], _: String) throws(ProbeError) -> String in String(decoding: bytes, as: UTF8.self) }
        #expect(try mountinfo.readIfMountTableChanged(table) != nil, "the first read reads")
        var unchangedSeen = false
        for _ in 0..<50 where !unchangedSeen {
            unchangedSeen = try mountinfo.readIfMountTableChanged(table) == nil
            if !unchangedSeen { usleep(20_000) }
        }
        #expect(unchangedSeen, "an unchanged mount table was read again every time")

        let point = FileManager.default.temporaryDirectory.appendingPathComponent(KernelFixtures.uniqueName("hm-mnt-")).path
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: point) }
        try #require(mount("hostmeter-test", point, "tmpfs", 0, nil) == 0, "mount: errno \(errno)")
        var mounted = true
        defer { if mounted { umount2(point, Int32(MNT_DETACH)) } }
        let afterMount = try #require(try mountinfo.readIfMountTableChanged(table), "the mount was not noticed")
        #expect(afterMount.contains(" \(point) "))

        #expect(umount2(point, 0) == 0, "umount: errno \(errno)")
        mounted = false
        let afterUnmount = try #require(try mountinfo.readIfMountTableChanged(table), "the unmount was not noticed")
        #expect(!afterUnmount.contains(" \(point) "))
    }

    @Test(.enabled(if: KernelFixtures.canMakeHybridCPUCgroups, "needs root and writable cgroup hierarchies"))
    func aKeptCgroupRemovedAndRecreatedReadsTheNewCgroup() throws {
        let layout = try #require(KernelFixtures.hostLayout)
        let unifiedMount = try #require(layout.unified)
        let memoryMount = try #require(layout.controllers["memory"])
        let name = KernelFixtures.uniqueName("hm-kept-")
        let blkioMount = try #require(layout.controllers["blkio"])
        // As the host is: the cgroup2 tree for CPU, memory (and blkio, where no cgroup is made) in v1.
        let reader = CgroupReader(
            layout: CgroupLayout(unified: unifiedMount, controllers: ["memory": memoryMount, "blkio": blkioMount]))
        let kept = KeptCgroup()
        let buffer = ReadBuffer()

        let unified = try TemporaryCgroup(mountPoint: unifiedMount, name: name)
        defer { unified.remove() }
        let memory = try TemporaryCgroup(mountPoint: memoryMount, name: name)
        defer { memory.remove() }
        let first = try reader.read(name, kept: kept, buffer: buffer)
        #expect(first.generation == (try Fixtures.inode(unified.path)))
        #expect(first.memoryLimitBytes == nil)
        // cpu.stat, memory.usage_in_bytes and memory.limit_in_bytes.
        #expect(kept.descriptorCount == 3)
        #expect(openDescriptors(under: unified.path + "/") == 1)
        #expect(openDescriptors(under: memory.path + "/") == 2)

        // A change of the kept file is seen through the same descriptors.
        try KernelFixtures.write("134217728\n", to: memory.path + "/memory.limit_in_bytes")
        #expect(try reader.read(name, kept: kept, buffer: buffer).memoryLimitBytes == 134_217_728)
        #expect(kept.descriptorCount == 3)

        // Removed: the kept descriptors fail (ENODEV), are closed, and the cgroup is missing.
        try #require(unified.remove() && memory.remove())
        #expect(throws: ProbeError.missing(path: unified.path)) { try reader.read(name, kept: kept, buffer: buffer) }
        #expect(kept.descriptorCount == 0)
        #expect(openDescriptors(under: unified.path + "/") == 0)

        // Made again under the same name, with another limit: the new cgroup is read.
        let unifiedAgain = try TemporaryCgroup(mountPoint: unifiedMount, name: name)
        defer { unifiedAgain.remove() }
        let memoryAgain = try TemporaryCgroup(mountPoint: memoryMount, name: name)
        defer { memoryAgain.remove() }
        try KernelFixtures.write("67108864\n", to: memoryAgain.path + "/memory.limit_in_bytes")
        let second = try reader.read(name, kept: kept, buffer: buffer)
        #expect(second.generation == (try Fixtures.inode(unifiedAgain.path)))
        #expect(second.generation != first.generation)
        #expect(second.memoryLimitBytes == 67_108_864)
        #expect(kept.descriptorCount == 3)
    }

    @Test(.enabled(if: KernelFixtures.canMakeHybridCPUCgroups, "needs root and writable cgroup hierarchies"))
    func aCgroupRecreatedBetweenTwoReadsIsNotMistakenForTheOld() throws {
        // Removed and made again between two reads, with no read in between: the old descriptors
        // fail, and the same read opens the new cgroup, as a fresh read would.
        let layout = try #require(KernelFixtures.hostLayout)
        let unifiedMount = try #require(layout.unified)
        let name = KernelFixtures.uniqueName("hm-kept-again-")
        let reader = CgroupReader(layout: CgroupLayout(unified: unifiedMount))
        let kept = KeptCgroup()
        let buffer = ReadBuffer()
        let first = try TemporaryCgroup(mountPoint: unifiedMount, name: name)
        let before = try reader.read(name, kept: kept, buffer: buffer)
        try #require(first.remove())
        let second = try TemporaryCgroup(mountPoint: unifiedMount, name: name)
        defer { second.remove() }
        let after = try reader.read(name, kept: kept, buffer: buffer)
        #expect(after.generation != before.generation)
        #expect(after.generation == (try Fixtures.inode(second.path)))
        #expect(after == (try reader.read(name)))
    }

    @Test(.enabled(if: KernelFixtures.canMakeNetworkNamespaces, "needs root and iproute2's ip with network namespaces"))
    func aKeptInterfaceDeletedAndRecreatedReadsTheNewDevice() throws {
        let ip = try #require(KernelFixtures.ipTool)
        let veth = try VethPair()
        defer { veth.remove() }
        let sys = SysFS()
        let kept = KeptInterface()
        let buffer = ReadBuffer()
        let before = try sys.interfaceCounters(veth.hostName, kept: kept, buffer: buffer)
        #expect(kept.descriptorCount == 3)
        #expect(try sys.interfaceCounters(veth.hostName, kept: kept, buffer: buffer).ifindex == before.ifindex)
        try veth.deleteLink()
        try KernelFixtures.run([ip, "link", "add", veth.hostName, "type", "veth", "peer", "name", veth.peerName])
        let recreated = try sys.interfaceCounters(veth.hostName, kept: kept, buffer: buffer)
        #expect(recreated.ifindex != before.ifindex)
        #expect(recreated.ifindex == UInt64(if_nametoindex(veth.hostName)))
        #expect(kept.descriptorCount == 3)
        try veth.deleteLink()
        #expect(throws: ProbeError.missing(path: "/sys/class/net/" + veth.hostName)) {
            try sys.interfaceCounters(veth.hostName, kept: kept, buffer: buffer)
        }
        #expect(kept.descriptorCount == 0)
    }
}
