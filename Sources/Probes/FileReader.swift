#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads whole files the way /proc and /sys need: to end of file, never trusting the size that
/// stat(2) reports (it is 0 or 4096 for most of them), and refusing anything over a cap so a
/// runaway file cannot take the agent's memory.
public enum FileReader {
    /// The cap for any single kernel file. /proc/stat on a 1,000-CPU host with a long `intr` line
    /// and /proc/self/mountinfo on a container host with thousands of mounts stay well below it.
    public static let defaultLimit = 8 << 20

    /// The whole content of `path`, or a `ProbeError` naming it.
    public static func read(_ path: String, limit: Int = defaultLimit) throws(ProbeError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, errno: errno) }
        defer { close(descriptor) }

        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var filled = 0
        while true {
            if filled == buffer.count {
                guard buffer.count < limit + 1 else { throw .tooLarge(path: path, limit: limit) }
                buffer.append(contentsOf: repeatElement(0, count: min(buffer.count, limit + 1 - buffer.count)))
            }
            let count = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(descriptor, raw.baseAddress! + filled, raw.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, errno: errno)
            }
            if count == 0 { break }
            filled += count
            if filled > limit { throw .tooLarge(path: path, limit: limit) }
        }
        buffer.removeSubrange(filled...)
        return buffer
    }

    /// Whether `path` names a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether anything exists at `path` (following symbolic links).
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
