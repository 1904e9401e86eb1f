import AgentAPI
import ArgumentParser
import Foundation
import HostMeterAgent
import Logging
import Metering
import Outbox
import Probes
import RuntimeState
import UsageModel
#if canImport(Glibc)
import Glibc
#endif

/// The bench could not run as designed: the generated host was not read as expected.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The VMs an instance bench meters: where their manifests are, how the probe reads them, and how
/// their counters move between samples.
protocol BenchHost {
    var count: Int { get }
    var manifests: String { get }
    /// The probe that reads the VMs, as the agent's would on such a host.
    func probe() throws -> InstanceProbe
    /// Moves the counters before sample `index`, outside the timed region.
    func writeCounters(sample index: Int) throws
}

/// A host with `count` VMs under `root`, laid out as the probes read a real one: the cgroup files
/// of the chosen layout, sys/class/net links to sys/devices/virtual/net, sparse images under
/// var/lib/libvirt/images, and a manifest per VM in etc/hostmeter/instances.d.
struct GeneratedHost: BenchHost {
    let root: String
    let layout: InstanceBench.Layout
    let count: Int

    var manifests: String { root + "/etc/hostmeter/instances.d" }

    func probe() throws -> InstanceProbe {
        let layout = CgroupLayout.detect(try ProcFS(root: root + "/proc").mountinfo())
        return InstanceProbe(layout: layout, sys: SysFS(root: root + "/sys"), rootfs: root)
    }

    static func name(_ index: Int) -> String {
        let digits = String(index)
        return "vm-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    static func cgroup(_ index: Int) -> String { "machine.slice/\(name(index)).scope" }

    static func image(_ index: Int) -> String { "/var/lib/libvirt/images/\(name(index)).img" }

    init(root: String, layout: InstanceBench.Layout, count: Int) throws {
        self.root = root
        self.layout = layout
        self.count = count
        try Self.mkdir(root + "/proc/self")
        try Self.mkdir(manifests)
        try Self.mkdir(root + "/var/lib/libvirt/images")
        try Self.mkdir(root + "/sys/class/net")
        switch layout {
        case .v2:
            try Self.put(root + "/proc/self/mountinfo", Self.mountinfoV2)
            try Self.mkdir(root + "/sys/fs/cgroup/machine.slice")
            try Self.put(root + "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        case .v1:
            try Self.put(root + "/proc/self/mountinfo", Self.mountinfoV1)
            for controller in ["cpu,cpuacct", "memory", "blkio"] { try Self.mkdir(root + "/sys/fs/cgroup/\(controller)/machine.slice") }
            for link in ["cpu", "cpuacct"] {
                guard symlink("cpu,cpuacct", root + "/sys/fs/cgroup/" + link) == 0 else {
                    throw BenchFailure("symlink \(link): errno \(errno)")
                }
            }
        }
        for index in 0..<count {
            let name = Self.name(index)
            let cgroup = Self.cgroup(index)
            switch layout {
            case .v2:
                let directory = root + "/sys/fs/cgroup/" + cgroup
                try Self.mkdir(directory)
                try Self.put(directory + "/memory.max", index % 3 == 0 ? "max\n" : "\(UInt64(index % 8 + 2) << 30)\n")
                try Self.put(
                    directory + "/io.stat",
                    "252:16 rbytes=\(734_003_200 + index) wbytes=\(1_073_741_824 + index) rios=10240 wios=4096 dbytes=0 dios=0\n")
            case .v1:
                try Self.mkdir(root + "/sys/fs/cgroup/cpu,cpuacct/" + cgroup)
                try Self.mkdir(root + "/sys/fs/cgroup/memory/" + cgroup)
                try Self.mkdir(root + "/sys/fs/cgroup/blkio/" + cgroup)
                try Self.put(
                    root + "/sys/fs/cgroup/memory/\(cgroup)/memory.limit_in_bytes",
                    index % 3 == 0 ? "9223372036854771712\n" : "\(UInt64(index % 8 + 2) << 30)\n")
                let read = 734_003_200 + index
                let write = 1_073_741_824 + index
                try Self.put(
                    root + "/sys/fs/cgroup/blkio/\(cgroup)/blkio.throttle.io_service_bytes_recursive",
                    "252:16 Read \(read)\n252:16 Write \(write)\n252:16 Sync \(write)\n252:16 Async \(read)\n252:16 Discard 0\n252:16 Total \(read + write)\nTotal \(read + write)\n"
                )
            }
            let tap = "tap\(index)"
            let device = root + "/sys/devices/virtual/net/" + tap
            try Self.mkdir(device + "/statistics")
            try Self.put(device + "/ifindex", "\(index + 10)\n")
            guard symlink("../../devices/virtual/net/" + tap, root + "/sys/class/net/" + tap) == 0 else {
                throw BenchFailure("symlink \(tap): errno \(errno)")
            }
            try Self.sparseImage(root + Self.image(index), blocks: index % 8 + 1)
            try Self.put(
                manifests + "/\(name).yaml",
                """
                instance_id: \(name)
                user_id: user-\(index % 97)
                org_id: org-\(index % 13)
                cgroup: \(cgroup)
                interfaces: [\(tap)]
                disks: [\(Self.image(index))]
                vcpus: \(index % 4 + 1)

                """)
        }
    }

    /// Rewrites every instance's changing counters for sample `index`: CPU time (0.1 to 0.4 of a
    /// CPU), memory in use, and tap bytes in both directions.
    func writeCounters(sample index: Int) throws {
        let k = UInt64(index)
        for instance in 0..<count {
            let i = UInt64(instance)
            let cgroup = Self.cgroup(instance)
            let usec = (i + 1) * 1_000_000 + k * (i % 4 + 1) * 500_000
            let memory = (UInt64(1) << 30) + (i % 8) * (256 << 20) + (k % 6) * (1 << 20)
            switch layout {
            case .v2:
                let directory = root + "/sys/fs/cgroup/" + cgroup
                let user = usec / 4 * 3
                try Self.put(
                    directory + "/cpu.stat",
                    "usage_usec \(usec)\nuser_usec \(user)\nsystem_usec \(usec - user)\ncore_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"
                )
                try Self.put(directory + "/memory.current", "\(memory)\n")
            case .v1:
                try Self.put(root + "/sys/fs/cgroup/cpu,cpuacct/\(cgroup)/cpuacct.usage", "\(usec * 1000 + i)\n")
                try Self.put(root + "/sys/fs/cgroup/memory/\(cgroup)/memory.usage_in_bytes", "\(memory)\n")
            }
            let statistics = root + "/sys/devices/virtual/net/tap\(instance)/statistics"
            try Self.put(statistics + "/rx_bytes", "\((i + 1) * 10_000 + k * (i % 7 + 1) * 250_000)\n")
            try Self.put(statistics + "/tx_bytes", "\((i + 1) * 20_000 + k * (i % 5 + 1) * 1_000_000)\n")
        }
    }

    static let mountinfoV2 = """
        22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
        26 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        28 22 0:5 / /dev rw,nosuid shared:8 - devtmpfs devtmpfs rw,size=4096k,nr_inodes=1048576,mode=755

        """

    static let mountinfoV1 = """
        18 61 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
        19 61 0:3 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
        20 61 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=8118196k,nr_inodes=2029549,mode=755
        24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
        25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
        27 24 0:23 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpuset
        28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpuacct,cpu
        29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
        30 24 0:26 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,blkio
        32 24 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
        61 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/centos-root rw,attr2,inode64,noquota

        """

    static func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `text` to `path` in place, keeping the inode as a kernel file's stays. Overwritten
    /// and then cut to length rather than opened with O_TRUNC: ext4 flushes a file truncated to 0
    /// and rewritten when it is closed (auto_da_alloc), which made every sample wait on the disk.
    static func put(_ path: String, _ text: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw BenchFailure("cannot open \(path): errno \(errno)") }
        defer { close(descriptor) }
        var text = text
        let length = text.utf8.count
        let written = text.withUTF8 { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard written == length, ftruncate(descriptor, off_t(length)) == 0 else {
            throw BenchFailure("cannot write \(path): errno \(errno)")
        }
    }

    /// A 20 GiB sparse image with `blocks` 4 KiB blocks written, so st_blocks is small and not 0.
    static func sparseImage(_ path: String, blocks: Int) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw BenchFailure("cannot create \(path): errno \(errno)") }
        defer { close(descriptor) }
        guard ftruncate(descriptor, 20 << 30) == 0 else { throw BenchFailure("cannot size \(path): errno \(errno)") }
        let block = [UInt8](repeating: 0xA5, count: 4096)
        for index in 0..<blocks {
            let written = block.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, 4096, off_t(index) << 26) }
            guard written == 4096 else { throw BenchFailure("cannot write \(path): errno \(errno)") }
        }
    }
}
