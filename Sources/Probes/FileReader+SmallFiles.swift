#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileReader {
    /// How much a small read takes on the stack before it spills to the heap. Swift promises a
    /// stack allocation up to 1 KiB; cgroup and sysfs value files (a number, cpu.stat's few lines)
    /// fit in it, so reading one costs a single allocation: the returned array.
    static let smallBufferSize = 1024

    /// The whole content of a small file such as a cgroup or sysfs value, like `read(_:limit:)` but
    /// without its 16 KiB scratch buffer: a 1,000-instance host reads several of these per instance
    /// per sample. Larger files still read whole, up to `limit`.
    public static func readSmall(_ path: String, limit: Int = defaultLimit) throws(ProbeError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, errno: errno) }
        defer { close(descriptor) }
        return try readToEnd(descriptor, limit: limit) { path }
    }

    /// Reads an open descriptor to end of file; `path` is only built when there is an error to name.
    static func readToEnd(
        _ descriptor: Int32, limit: Int, path: () -> String
    ) throws(ProbeError) -> [UInt8] {
        // The typed error escapes the closure through a local: the closure of
        // withUnsafeTemporaryAllocation cannot throw a typed error itself.
        var failure: ProbeError?
        let bytes = withUnsafeTemporaryAllocation(byteCount: smallBufferSize, alignment: 16) { buffer -> [UInt8] in
            let base = buffer.baseAddress!
            var filled = 0
            while filled < smallBufferSize {
                let count = Glibc.read(descriptor, base + filled, smallBufferSize - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = .unreadable(path: path(), errno: errno)
                    return []
                }
                if count == 0 { return Array(UnsafeRawBufferPointer(start: base, count: filled)) }
                filled += count
            }
            // The stack buffer is full: go on in a growing array.
            var result = Array(UnsafeRawBufferPointer(start: base, count: filled))
            var chunk = smallBufferSize
            while true {
                if result.count > limit {
                    failure = .tooLarge(path: path(), limit: limit)
                    return []
                }
                let start = result.count
                result.append(contentsOf: repeatElement(0, count: chunk))
                let count = result.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + start, chunk) }
                if count < 0 {
                    if errno == EINTR {
                        result.removeLast(chunk)
                        continue
                    }
                    failure = .unreadable(path: path(), errno: errno)
                    return []
                }
                result.removeLast(chunk - count)
                if count == 0 { return result }
                chunk = min(chunk * 2, 1 << 20)
            }
        }
        if let failure { throw failure }
        return bytes
    }
}

/// A directory opened once so that several files in it are read with openat(2).
///
/// Reading a cgroup's or an interface's files through one descriptor costs one path walk instead
/// of one per file, and ties every value to the same kernel object: if the cgroup or tap is
/// removed and recreated meanwhile, the reads fail rather than mix the old and new one's counters.
struct OpenDirectory: ~Copyable {
    let descriptor: Int32
    /// The directory's path, for error messages.
    let path: String

    /// Opens `path` (following symbolic links, as /sys/class/net/<name> is one); nil when it does
    /// not exist or is not a directory.
    static func open(_ path: String) throws(ProbeError) -> OpenDirectory? {
        let descriptor = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .unreadable(path: path, errno: code)
        }
        return OpenDirectory(descriptor: descriptor, path: path)
    }

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// The directory's inode number. For a cgroup or a sysfs directory it is new each time the
    /// kernel object is created, so it tells a recreated one from the old.
    func inode() throws(ProbeError) -> UInt64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw .systemCall(name: "fstat", path: path, errno: errno)
        }
        return UInt64(info.st_ino)
    }

    /// The content of the file `name` in the directory, or nil when there is no such file.
    func read(_ name: String, limit: Int = FileReader.defaultLimit) throws(ProbeError) -> [UInt8]? {
        let file = openat(descriptor, name, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else {
            let code = errno
            if code == ENOENT { return nil }
            throw .unreadable(path: filePath(name), errno: code)
        }
        defer { close(file) }
        return try FileReader.readToEnd(file, limit: limit) { filePath(name) }
    }

    /// The path of `name` in the directory, for error messages.
    func filePath(_ name: String) -> String { path + "/" + name }
}
