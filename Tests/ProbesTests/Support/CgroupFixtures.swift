#if canImport(Glibc)
import Glibc
#endif

@testable import Probes

/// The per-instance fixture trees: one host of each cgroup layout, each a root with proc/self/mountinfo,
/// sys/fs/cgroup, sys/class/net and sys/dev/block (their READMEs say where the formats came from).
extension Fixtures {
    static let cgroupV2 = root + "/cgroup-v2"
    static let cgroupV1 = root + "/cgroup-v1"
    static let cgroupHybrid = root + "/cgroup-hybrid"

    /// The cgroups of the two VMs in every tree, as /proc/PID/cgroup prints them for libvirt's QEMU.
    static let vm42 = #"machine.slice/machine-qemu\x2d1\x2dvm42.scope"#
    static let vm43 = #"machine.slice/machine-qemu\x2d2\x2dvm43.scope"#

    /// The layout a tree's mountinfo describes.
    static func layout(_ tree: String) throws -> CgroupLayout {
        CgroupLayout.detect(try ProcFS(root: tree + "/proc").mountinfo())
    }

    /// The inode of `path`, which the readers report as a generation.
    static func inode(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ProbeError.systemCall(name: "stat", path: path, errno: errno) }
        return UInt64(info.st_ino)
    }
}
