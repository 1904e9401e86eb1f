#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Space and inodes of one filesystem, as statvfs(3) reports them.
public struct FilesystemSpace: Sendable, Equatable {
    /// f_blocks × f_frsize.
    public var sizeBytes: UInt64
    /// (f_blocks − f_bfree) × f_frsize: what df calls Used, reserved blocks not included.
    public var usedBytes: UInt64
    /// f_bavail × f_frsize: free space an unprivileged user can write.
    public var availableBytes: UInt64
    public var files: UInt64
    public var filesFree: UInt64

    public init(sizeBytes: UInt64, usedBytes: UInt64, availableBytes: UInt64, files: UInt64, filesFree: UInt64) {
        self.sizeBytes = sizeBytes
        self.usedBytes = usedBytes
        self.availableBytes = availableBytes
        self.files = files
        self.filesFree = filesFree
    }

    /// Used as a percent of the space a user can have, as df's Use% computes it:
    /// used / (used + available) × 100.
    public var usedPercent: Double {
        let denominator = usedBytes &+ availableBytes
        return denominator == 0 ? 0 : Double(usedBytes) / Double(denominator) * 100
    }

    /// Calls statvfs(3) on `path`.
    public static func of(_ path: String) throws(ProbeError) -> FilesystemSpace {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw .systemCall(name: "statvfs", path: path, errno: errno)
        }
        let fragment = UInt64(info.f_frsize)
        let blocks = UInt64(info.f_blocks)
        let free = min(UInt64(info.f_bfree), blocks)
        return FilesystemSpace(
            sizeBytes: blocks &* fragment, usedBytes: (blocks - free) &* fragment,
            availableBytes: UInt64(info.f_bavail) &* fragment, files: UInt64(info.f_files),
            filesFree: UInt64(info.f_ffree))
    }
}
