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

        // Read into scratch memory grown by doubling, then copy the bytes once into the result;
        // memory past `filled` is never read, so it needs no zeroing.
        var capacity = 16 << 10
        var scratch = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { scratch.deallocate() }
        var filled = 0
        while true {
            if filled == capacity {
                guard capacity <= limit else { throw .tooLarge(path: path, limit: limit) }
                let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 16)
                grown.copyMemory(from: scratch, byteCount: filled)
                scratch.deallocate()
                scratch = grown
                capacity *= 2
            }
            let count = Glibc.read(descriptor, scratch + filled, capacity - filled)
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, errno: errno)
            }
            if count == 0 { break }
            filled += count
            if filled > limit { throw .tooLarge(path: path, limit: limit) }
        }
        return Array(UnsafeRawBufferPointer(start: scratch, count: filled))
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
