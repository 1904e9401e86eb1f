import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

/// The instance probes against the running kernel: real cgroups, a real veth pair, real IO. Each
/// test says why it is skipped where this machine does not allow it (KernelFixtures). Serialized so
/// the CPU burner and the IO run one at a time on small build machines.
@Suite(.serialized)
struct InstanceKernelTests {
    // MARK: CPU

    @Test(
        .enabled(
            if: KernelFixtures.canMakeHybridCPUCgroups,
            "needs root and writable cgroup2 and v1 cpuacct hierarchies (a hybrid host)"))
    func cpuTimeOfBothHierarchiesMatchesTheCgroupAndTheProcess() throws {
        let layout = try #require(KernelFixtures.hostLayout)
        let unifiedMount = try #require(layout.unified)
        let cpuacctMount = try #require(layout.controllers["cpuacct"])
        let name = KernelFixtures.uniqueName("hm-probes-cpu-")

        let burner = try StoppedChild.cpuBurner()
        defer { burner.stop() }
        let unified = try TemporaryCgroup(mountPoint: unifiedMount, name: name)
        defer {
            burner.stop()
            unified.remove()
        }
        let cpuacct = try TemporaryCgroup(mountPoint: cpuacctMount, name: name)
        defer {
            burner.stop()
            cpuacct.remove()
        }

        // The shell spent a little CPU before stopping itself, outside the cgroups.
        let processBefore = try burner.cpuNanoseconds()
        try unified.add(burner.pid)
        try cpuacct.add(burner.pid)
        burner.resume()
        // About 2 s; longer (at most 10 s) while a busy machine gave it under 1.5 s of CPU, so the
        // 10 ms ticks of /proc/PID/stat stay well inside 2 %.
        let started = Date()
        usleep(2_000_000)
        while try CgroupFiles.parseCPUStat(unified.read("cpu.stat"), path: "cpu.stat") < 1_500_000_000,
            Date().timeIntervalSince(started) < 10
        {
            usleep(250_000)
        }
        try burner.pause()
        let process = try burner.cpuNanoseconds() - processBefore

        // The host as it is (hybrid): CPU from the unified tree's cpu.stat.
        let hybrid = try CgroupReader(layout: layout).read(name)
        let v2 = try CgroupFiles.parseCPUStat(unified.read("cpu.stat"), path: unified.path + "/cpu.stat")
        #expect(hybrid.sources.cpu == .v2)
        #expect(hybrid.cpuNanoseconds == v2)
        #expect(hybrid.generation == (try Fixtures.inode(unified.path)))

        // The same host read as if it were legacy: CPU from cpuacct.usage.
        let legacy = try CgroupReader(layout: CgroupLayout(controllers: layout.controllers)).read("/" + name)
        let v1 = try SingleValue.parseCounter(cpuacct.read("cpuacct.usage"), path: cpuacct.path + "/cpuacct.usage")
        #expect(legacy.sources.cpu == .v1)
        #expect(legacy.cpuNanoseconds == v1)
        #expect(legacy.generation == (try Fixtures.inode(cpuacct.path)))

        expectClose(hybrid.cpuNanoseconds ?? 0, process, within: 0.02, "cgroup v2 usage_usec vs the process's utime+stime")
        expectClose(legacy.cpuNanoseconds ?? 0, process, within: 0.02, "cgroup v1 cpuacct.usage vs the process's utime+stime")
        print("kernel CPU: process \(process) ns, v2 cpu.stat \(v2) ns, v1 cpuacct.usage \(v1) ns")
    }

    @Test(.enabled(if: KernelFixtures.canMakeHybridCPUCgroups, "needs root and writable cgroup hierarchies"))
    func aRemovedCgroupIsMissingAndARecreatedOneHasANewGeneration() throws {
        let layout = try #require(KernelFixtures.hostLayout)
        let name = KernelFixtures.uniqueName("hm-probes-gen-")
        let reader = CgroupReader(layout: layout)
        let first = try TemporaryCgroup(mountPoint: try #require(layout.unified), name: name)
        let before = try reader.read(name).generation
        first.remove()
        do throws(ProbeError) {
            _ = try reader.read(name)
            Issue.record("expected the removed cgroup to be missing")
        } catch {
            #expect(error.isMissing, "\(error)")
        }
        let second = try TemporaryCgroup(mountPoint: try #require(layout.unified), name: name)
        defer { second.remove() }
        #expect(try reader.read(name).generation != before)
    }

    // MARK: Network

    @Test(.enabled(if: KernelFixtures.canMakeNetworkNamespaces, "needs root and iproute2's ip with network namespaces"))
    func interfaceCountersCountEchoTrafficAcrossAVethPair() throws {
        let veth = try VethPair()
        defer { veth.remove() }
        let sys = SysFS()
        let echo = try ICMPEcho(to: veth.peerAddress)
        // The first echo resolves the peer's address (ARP) so the counted ones carry nothing else.
        try echo.ping(payload: 56)

        let before = try sys.interfaceCounters(veth.hostName)
        let peerBefore = try veth.peerStatistics()
        let count = 500
        let payload = 1000
        for _ in 0..<count { try echo.ping(payload: payload) }
        let after = try sys.interfaceCounters(veth.hostName)
        let peerAfter = try veth.peerStatistics()

        let expected = UInt64(count) * ICMPEcho.frameBytes(payload: payload)
        let sent = after.txBytes - before.txBytes
        let received = after.rxBytes - before.rxBytes
        expectClose(sent, expected, within: 0.01, "tx bytes vs \(count) echo requests of \(payload) bytes")
        expectClose(received, expected, within: 0.01, "rx bytes vs \(count) echo replies of \(payload) bytes")
        // What the kernel counted on the other end, read inside the peer's namespace.
        #expect(sent == peerAfter.rxBytes - peerBefore.rxBytes)
        #expect(received == peerAfter.txBytes - peerBefore.txBytes)
        #expect(after.ifindex == UInt64(if_nametoindex(veth.hostName)))
        #expect(after.ifindex == before.ifindex)
        print("kernel veth: tx \(sent) rx \(received) bytes, expected \(expected) each")
    }

    @Test(.enabled(if: KernelFixtures.canMakeNetworkNamespaces, "needs root and iproute2's ip with network namespaces"))
    func aDeletedInterfaceIsMissingAndARecreatedOneHasANewIndex() throws {
        let ip = try #require(KernelFixtures.ipTool)
        let veth = try VethPair()
        defer { veth.remove() }
        let sys = SysFS()
        let before = try sys.interfaceCounters(veth.hostName)
        try veth.deleteLink()
        #expect(throws: ProbeError.missing(path: "/sys/class/net/" + veth.hostName)) {
            try sys.interfaceCounters(veth.hostName)
        }
        // The same name again, as a VM's tap is when the VM restarts; remove() deletes it.
        try KernelFixtures.run([ip, "link", "add", veth.hostName, "type", "veth", "peer", "name", veth.peerName])
        let recreated = try sys.interfaceCounters(veth.hostName)
        #expect(recreated.ifindex != before.ifindex)
        #expect(recreated.ifindex == UInt64(if_nametoindex(veth.hostName)))
    }

    // MARK: Block IO

    @Test(
        .enabled(
            if: KernelFixtures.canMakeBlkioCgroups && KernelFixtures.wholeDisk(holding: NSTemporaryDirectory()) != nil,
            "needs root, a writable v1 blkio hierarchy and a temporary directory on a block device"))
    func blkioCountsDirectIOOnceAThrottleRuleIsSet() throws {
        let layout = try #require(KernelFixtures.hostLayout)
        let disk = try #require(KernelFixtures.wholeDisk(holding: NSTemporaryDirectory()))
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let file = tree.root + "/io.bin"
        let megabytes = 2
        // Load dd and its libraries into the page cache outside the cgroup first: read from a cold
        // cache (right after a build) they would count as the cgroup's reads.
        _ = try? KernelFixtures.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64k count=1 2>/dev/null"])
        let child = try StoppedChild([
            "/bin/sh", "-c",
            "dd if=/dev/zero of=\(file) bs=64k count=\(megabytes * 16) oflag=direct 2>/dev/null && dd if=\(file) of=/dev/null bs=64k iflag=direct 2>/dev/null",
        ])
        defer { child.stop() }
        let blkio = try TemporaryCgroup(
            mountPoint: try #require(layout.controllers["blkio"]), name: KernelFixtures.uniqueName("hm-probes-io-"))
        defer {
            child.stop()
            blkio.remove()
        }
        // Since Linux 6.x the v1 throttle counters only count on a disk with a throttle rule; a
        // rule of 1 TiB/s changes nothing else.
        try KernelFixtures.write("\(disk) 1099511627776\n", to: blkio.path + "/blkio.throttle.write_bps_device")
        try blkio.add(child.pid)
        child.resume()
        #expect(child.waitForExit(timeout: 60) == 0)

        let usage = try CgroupReader(layout: layout).read(blkio.relativePath)
        let raw = try CgroupFiles.parseBlkioServiceBytes(
            blkio.read("blkio.throttle.io_service_bytes_recursive"), path: "blkio.throttle.io_service_bytes_recursive")
        #expect(usage.sources.io == .v1)
        #expect(usage.ioReadBytes == raw.readBytes)
        #expect(usage.ioWriteBytes == raw.writeBytes)
        let expected = UInt64(megabytes) << 20
        expectClose(usage.ioWriteBytes ?? 0, expected, within: 0.01, "blkio Write vs dd's O_DIRECT writes")
        expectClose(usage.ioReadBytes ?? 0, expected, within: 0.01, "blkio Read vs dd's O_DIRECT reads")
        print("kernel blkio on \(disk): read \(usage.ioReadBytes ?? 0) written \(usage.ioWriteBytes ?? 0), expected \(expected)")
    }

    // MARK: Block devices

    /// The size of the block device `device` as the kernel reports it apart from sysfs: its end by
    /// lseek(2), or where the device cannot be opened (a container's device policy) the 1 KiB
    /// blocks of its line in /proc/partitions.
    private func referenceSize(of device: String) throws -> UInt64 {
        let descriptor = open(device, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            defer { close(descriptor) }
            let end = lseek(descriptor, 0, SEEK_END)
            if end > 0 { return UInt64(end) }
        }
        var info = stat()
        try #require(stat(device, &info) == 0)
        let major = DeviceNumber.major(UInt64(info.st_rdev))
        let minor = DeviceNumber.minor(UInt64(info.st_rdev))
        let partitions = String(decoding: try FileReader.read("/proc/partitions"), as: UTF8.self)
        for line in partitions.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 4, fields[0] == "\(major)", fields[1] == "\(minor)", let blocks = UInt64(fields[2]) {
                return blocks * 1024
            }
        }
        throw TestSupportError("\(major):\(minor) is not in /proc/partitions")
    }

    @Test(.enabled(if: KernelFixtures.rootBlockDevice != nil, "needs / on a block device"))
    func aRealBlockDeviceIsSizedAsTheKernelSeesIt() throws {
        let device = try #require(KernelFixtures.rootBlockDevice)
        let usage = try DiskAllocation().usage(device)
        #expect(usage == DiskUsage(path: device, allocatedBytes: try referenceSize(of: device), kind: .blockDevice))
        print("kernel block device \(device): \(usage.allocatedBytes) bytes")
    }
}
