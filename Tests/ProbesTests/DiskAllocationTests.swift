import Foundation
import Testing

@testable import Probes

struct DiskAllocationTests {
    /// The kernel's st_blocks for `path`, in bytes.
    private func allocated(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ProbeError.systemCall(name: "stat", path: path, errno: errno) }
        return UInt64(info.st_blocks) * 512
    }

    /// A sparse file: `written` bytes of data at the start, `length` bytes long.
    private func makeSparse(_ path: String, written: Int, length: Int) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw ProbeError.systemCall(name: "open", path: path, errno: errno) }
        defer { close(descriptor) }
        let data = [UInt8](repeating: 0xA5, count: written)
        guard data.withUnsafeBytes({ write(descriptor, $0.baseAddress, written) }) == written,
            ftruncate(descriptor, off_t(length)) == 0, fsync(descriptor) == 0
        else { throw ProbeError.systemCall(name: "write", path: path, errno: errno) }
    }

    @Test func aSparseImageCountsItsAllocatedBlocksNotItsLength() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.makeDirectory("var/lib/libvirt/images")
        let image = tree.root + "/var/lib/libvirt/images/vm42.qcow2"
        try makeSparse(image, written: 1 << 20, length: 1 << 30)
        let usage = try DiskAllocation(rootfs: tree.root).usage("/var/lib/libvirt/images/vm42.qcow2")
        #expect(usage == DiskUsage(path: "/var/lib/libvirt/images/vm42.qcow2", allocatedBytes: try allocated(image), kind: .file))
        // What the filesystem allocated for 1 MiB of data: at least that, far from the 1 GiB length.
        #expect(usage.allocatedBytes >= 1 << 20)
        #expect(usage.allocatedBytes < 1 << 24)
    }

    @Test func anEmptyImageTakesNothing() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try makeSparse(tree.root + "/empty.raw", written: 0, length: 10 << 30)
        #expect(try DiskAllocation(rootfs: tree.root).usage("/empty.raw").allocatedBytes == 0)
    }

    @Test func symbolicLinksAreFollowed() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try makeSparse(tree.root + "/real.img", written: 8192, length: 1 << 20)
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/link.img", withDestinationPath: "real.img")
        let usage = try DiskAllocation(rootfs: tree.root).usage("/link.img")
        #expect(usage == DiskUsage(path: "/link.img", allocatedBytes: try allocated(tree.root + "/real.img"), kind: .file))
    }

    // Making a block device node needs CAP_MKNOD; the size comes from the fixture's
    // sys/dev/block/252:7/size (41943040 sectors: 20 GiB), whatever device 252:7 is on this host.
    @Test(.enabled(if: geteuid() == 0, "needs root to mknod a block device node"))
    func aBlockDeviceCountsItsSizeFromSysfs() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.makeDirectory("dev/vg0")
        let node = tree.root + "/dev/vg0/vm42"
        guard mknod(node, S_IFBLK | 0o600, dev_t(DeviceNumber.make(major: 252, minor: 7))) == 0 else {
            throw ProbeError.systemCall(name: "mknod", path: node, errno: errno)
        }
        let disks = DiskAllocation(rootfs: tree.root, sys: SysFS(root: Fixtures.cgroupV2 + "/sys"))
        #expect(try disks.usage("/dev/vg0/vm42") == DiskUsage(path: "/dev/vg0/vm42", allocatedBytes: 20 << 30, kind: .blockDevice))
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to mknod a block device node"))
    func aBlockDeviceUnknownToSysfsIsUnreadable() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let node = tree.root + "/disk"
        guard mknod(node, S_IFBLK | 0o600, dev_t(DeviceNumber.make(major: 252, minor: 8))) == 0 else {
            throw ProbeError.systemCall(name: "mknod", path: node, errno: errno)
        }
        let disks = DiskAllocation(rootfs: tree.root, sys: SysFS(root: Fixtures.cgroupV2 + "/sys"))
        #expect(throws: ProbeError.unreadable(path: Fixtures.cgroupV2 + "/sys/dev/block/252:8/size", errno: ENOENT)) {
            try disks.usage("/disk")
        }
    }

    @Test func aMissingImageIsMissing() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        let disks = DiskAllocation(rootfs: tree.root)
        #expect(throws: ProbeError.missing(path: tree.root + "/gone.qcow2")) { try disks.usage("/gone.qcow2") }
        #expect(throws: ProbeError.missing(path: tree.root + "/no/such/dir.qcow2")) { try disks.usage("/no/such/dir.qcow2") }
    }

    @Test func aDirectoryIsRefusedNamingIt() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        try tree.makeDirectory("images")
        #expect(
            throws: ProbeError.invalid(path: tree.root + "/images", reason: "is a directory, not a disk image or block device")
        ) { try DiskAllocation(rootfs: tree.root).usage("/images") }
    }

    @Test func aFIFOIsRefusedNamingIt() throws {
        let tree = try TemporaryTree()
        defer { withExtendedLifetime(tree) {} }
        guard mkfifo(tree.root + "/pipe", 0o600) == 0 else { throw ProbeError.systemCall(name: "mkfifo", path: tree.root, errno: errno) }
        #expect(
            throws: ProbeError.invalid(path: tree.root + "/pipe", reason: "is neither a regular file nor a block device")
        ) { try DiskAllocation(rootfs: tree.root).usage("/pipe") }
    }

    @Test func aRelativePathIsRefused() {
        #expect(throws: ProbeError.invalid(path: "images/vm.qcow2", reason: "a disk path must be absolute")) {
            try DiskAllocation().usage("images/vm.qcow2")
        }
    }

    // MARK: Device numbers

    @Test(arguments: [
        (UInt32(8), UInt32(0)), (254, 0), (252, 7), (259, 1_048_575), (4095, 255), (4096, 256), (0xFFFF_FFFF, 0xFFFF_FFFF),
    ])
    func deviceNumbersRoundTripThroughGlibcsEncoding(major: UInt32, minor: UInt32) {
        let device = DeviceNumber.make(major: major, minor: minor)
        #expect(DeviceNumber.major(device) == major)
        #expect(DeviceNumber.minor(device) == minor)
    }

    @Test func deviceNumbersMatchGlibcOnKnownValues() {
        // 8:1 is 0x801 in the old encoding glibc keeps for small numbers; 259:65536 spreads its minor.
        #expect(DeviceNumber.make(major: 8, minor: 1) == 0x801)
        #expect(DeviceNumber.make(major: 259, minor: 65536) == 0x1001_0300)
        #expect(DeviceNumber.major(0x1001_0300) == 259)
        #expect(DeviceNumber.minor(0x1001_0300) == 65536)
    }
}
