import Foundation
import Testing

@testable import Probes

struct InstanceProbeTests {
    private func probe(_ tree: String) throws -> InstanceProbe {
        try InstanceProbe.detect(procRoot: tree + "/proc", sysRoot: tree + "/sys", rootfs: tree)
    }

    private static let vnet0 = InterfaceCounters(name: "vnet0", rxBytes: 123_456_789, txBytes: 987_654_321, ifindex: 7)
    private static let vnet1 = InterfaceCounters(name: "vnet1", rxBytes: 5000, txBytes: 70000, ifindex: 8)

    @Test(arguments: [Fixtures.cgroupV2, Fixtures.cgroupV1, Fixtures.cgroupHybrid])
    func aRunningInstanceOnEachLayout(tree: String) throws {
        let result = try probe(tree).probe(InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["vnet0", "vnet1"]))
        let expectedCgroup = try CgroupReader(layout: Fixtures.layout(tree), root: tree).read(Fixtures.vm42)
        #expect(result == InstanceProbeResult(cgroup: expectedCgroup, interfaces: [Self.vnet0, Self.vnet1]))
        #expect(result.isRunning)
    }

    @Test func theLayoutIsDetectedFromTheProcRoot() throws {
        #expect(try probe(Fixtures.cgroupHybrid).cgroups.layout.kind == .hybrid)
        #expect(try probe(Fixtures.cgroupV1).cgroups.layout.kind == .legacy)
        #expect(try probe(Fixtures.cgroupV2).cgroups.layout.kind == .unified)
    }

    @Test func aMissingCgroupMeansNotRunningAndTheRestIsStillRead() throws {
        let gone = #"machine.slice/machine-qemu\x2d9\x2dgone.scope"#
        let result = try probe(Fixtures.cgroupV2).probe(InstanceTarget(cgroupPath: gone, interfaces: ["vnet0"]))
        #expect(result == InstanceProbeResult(interfaces: [Self.vnet0], missing: ["cgroup \(gone) missing"]))
        #expect(!result.isRunning)
    }

    @Test func aMissingInterfaceMeansNotRunning() throws {
        let result = try probe(Fixtures.cgroupV1).probe(
            InstanceTarget(cgroupPath: Fixtures.vm43, interfaces: ["vnet9", "vnet1"]))
        #expect(result.cgroup?.cpuNanoseconds == 120_000_123)
        #expect(result.interfaces == [Self.vnet1])
        #expect(result.missing == ["interface vnet9 missing"])
        #expect(result.errors.isEmpty)
        #expect(!result.isRunning)
    }

    @Test func anInvalidInterfaceNameIsAnErrorNotAStoppedInstance() throws {
        let result = try probe(Fixtures.cgroupV2).probe(InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["../lo"]))
        #expect(result.interfaces.isEmpty)
        #expect(result.errors == [.invalid(path: "../lo", reason: "not a valid interface name: contains '/'")])
        #expect(result.isRunning)
    }

    @Test func noCgroupPathReadsNoCgroup() throws {
        let result = try probe(Fixtures.cgroupV2).probe(InstanceTarget(interfaces: ["vnet1"]))
        #expect(result == InstanceProbeResult(interfaces: [Self.vnet1]))
    }

    /// The fixture tree copied to a scratch root, with the disks made there.
    private func hostWithDisks() throws -> (TemporaryTree, String) {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let host = tree.root + "/host"
        try FileManager.default.copyItem(atPath: Fixtures.cgroupV2, toPath: host)
        try FileManager.default.createDirectory(atPath: host + "/var/lib/libvirt/images", withIntermediateDirectories: true)
        let image = host + "/var/lib/libvirt/images/vm42.qcow2"
        #expect(FileManager.default.createFile(atPath: image, contents: Data(repeating: 0x5A, count: 65536)))
        #expect(truncate(image, 64 << 30) == 0)
        return (tree, host)
    }

    @Test func disksAreSizedUnderTheRootfs() throws {
        let (tree, host) = try hostWithDisks()
        defer { withExtendedLifetime(tree) {} }
        var info = stat()
        #expect(stat(host + "/var/lib/libvirt/images/vm42.qcow2", &info) == 0)
        let result = try probe(host).probe(
            InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["vnet0"], disks: ["/var/lib/libvirt/images/vm42.qcow2"]))
        #expect(
            result.disks == [
                DiskUsage(path: "/var/lib/libvirt/images/vm42.qcow2", allocatedBytes: UInt64(info.st_blocks) * 512, kind: .file)
            ])
        #expect(result.errors.isEmpty)
        #expect(result.isRunning)
    }

    @Test func aMissingDiskIsAnErrorButTheInstanceStillRuns() throws {
        let (tree, host) = try hostWithDisks()
        defer { withExtendedLifetime(tree) {} }
        let result = try probe(host).probe(
            InstanceTarget(
                cgroupPath: Fixtures.vm42, interfaces: ["vnet0"],
                disks: ["/var/lib/libvirt/images/detached.qcow2", "/var/lib/libvirt/images/vm42.qcow2"]))
        #expect(result.disks.map(\.path) == ["/var/lib/libvirt/images/vm42.qcow2"])
        #expect(result.errors == [.missing(path: host + "/var/lib/libvirt/images/detached.qcow2")])
        #expect(result.missing.isEmpty)
        #expect(result.isRunning)
        #expect(result.cgroup != nil)
        #expect(result.interfaces == [Self.vnet0])
    }

    @Test func aBrokenCgroupFileIsAnErrorAndTheRestIsStillRead() throws {
        let (tree, host) = try hostWithDisks()
        defer { withExtendedLifetime(tree) {} }
        let cpuStat = host + "/sys/fs/cgroup/" + Fixtures.vm42 + "/cpu.stat"
        try Data("usage_usec twelve\n".utf8).write(to: URL(fileURLWithPath: cpuStat))
        let result = try probe(host).probe(
            InstanceTarget(cgroupPath: Fixtures.vm42, interfaces: ["vnet0"], disks: ["/var/lib/libvirt/images/vm42.qcow2"]))
        #expect(result.cgroup == nil)
        #expect(result.interfaces == [Self.vnet0])
        #expect(result.disks.count == 1)
        #expect(result.missing.isEmpty)
        #expect(result.isRunning)
        guard case .malformed(let path, let line, _) = result.errors.first, result.errors.count == 1 else {
            Issue.record("expected one .malformed error, got \(result.errors)")
            return
        }
        #expect(path == cpuStat)
        #expect(line == 1)
    }
}
