#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The storage a VM disk takes on the host.
public struct DiskUsage: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// An image file (qcow2, raw): what its blocks take on the host filesystem, so a sparse or
        /// thin image counts what it really uses.
        case file
        /// A block device (an LVM volume, a partition, a whole disk): its whole size, allocated to
        /// the VM whether written or not. A thin LV is counted at its virtual size.
        case blockDevice
    }

    /// The path as given.
    public var path: String
    public var allocatedBytes: UInt64
    public var kind: Kind

    public init(path: String, allocatedBytes: UInt64, kind: Kind) {
        self.path = path
        self.allocatedBytes = allocatedBytes
        self.kind = kind
    }
}

/// Device numbers as glibc's gnu_dev_major/gnu_dev_minor split a dev_t: 12 bits of major and 20
/// of minor in the kernel's encoding, spread over the 64-bit value for compatibility with the old
/// 8:8 one.
public enum DeviceNumber {
    public static func major(_ device: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff))
    }

    public static func minor(_ device: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~0xff))
    }

    /// glibc's gnu_dev_makedev, for tests and for making device nodes.
    public static func make(major: UInt32, minor: UInt32) -> UInt64 {
        let major = UInt64(major)
        let minor = UInt64(minor)
        return ((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12)
    }
}

/// Sizes VM disks: image files by their allocated blocks, block devices by their size in sysfs.
public struct DiskAllocation: Sendable {
    /// Disk paths are looked up under this root (node_exporter's `--path.rootfs`).
    public let rootfs: String
    /// Where /sys/dev/block/<major>:<minor>/size is read.
    public let sys: SysFS

    public init(rootfs: String = "/", sys: SysFS = SysFS()) {
        var rootfs = rootfs
        while rootfs.hasSuffix("/") { rootfs.removeLast() }
        self.rootfs = rootfs
        self.sys = sys
    }

    /// The storage the disk at `path` (absolute, symbolic links followed) takes.
    ///
    /// A regular file counts st_blocks × 512 (stat(2)'s unit whatever the filesystem's block
    /// size), not its length: a 100 GB sparse image with 3 GB written takes 3 GB. A block device
    /// counts its size in 512-byte sectors from sysfs, which needs no open(2) of the device (and so
    /// no permission on it). Throws `.missing` when nothing is at `path`, `.invalid` for a
    /// directory or any other kind of file.
    public func usage(_ path: String) throws(ProbeError) -> DiskUsage {
        guard path.hasPrefix("/") else { throw .invalid(path: path, reason: "a disk path must be absolute") }
        let resolved = rootfs + path
        var info = stat()
        guard stat(resolved, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .missing(path: resolved) }
            throw .systemCall(name: "stat", path: resolved, errno: code)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            // st_blocks is a blkcnt_t (signed); it is never negative.
            let (bytes, overflow) = UInt64(clamping: info.st_blocks).multipliedReportingOverflow(by: 512)
            return DiskUsage(path: path, allocatedBytes: overflow ? .max : bytes, kind: .file)
        case S_IFBLK:
            let device = UInt64(info.st_rdev)
            let sizePath = sys.path("dev/block/\(DeviceNumber.major(device)):\(DeviceNumber.minor(device))/size")
            let sectors = try SingleValue.parseCounter(FileReader.readSmall(sizePath), path: sizePath)
            let (size, overflow) = sectors.multipliedReportingOverflow(by: 512)
            guard !overflow else {
                throw .malformed(path: sizePath, line: 1, reason: "\(sectors) sectors of 512 bytes overflow 64 bits")
            }
            return DiskUsage(path: path, allocatedBytes: size, kind: .blockDevice)
        case S_IFDIR:
            throw .invalid(path: resolved, reason: "is a directory, not a disk image or block device")
        default:
            throw .invalid(path: resolved, reason: "is neither a regular file nor a block device")
        }
    }
}
