import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory that kept files are read into, reused from one read to the next.
///
/// A read goes into raw scratch memory with pread(2) and is then copied into `bytes`, an array
/// whose storage is kept (`removeAll(keepingCapacity:)`), because the parsers take `[UInt8]` and an
/// array cannot grow its count over uninitialised memory. The copy is the file's length only; no
/// allocation happens once both have grown to the largest file read. One buffer serves every file
/// its owner reads one after the other: a host collector has one, and all instances of a host share
/// one, so 1,000 VMs do not hold 1,000 buffers.
public final class ReadBuffer {
    private var scratch: UnsafeMutableRawPointer
    /// Bytes of scratch memory; doubles when a read fills it, up to just above `limit`.
    private(set) var capacity: Int
    /// The largest file accepted, as `FileReader`'s cap.
    public let limit: Int
    /// The bytes of the last read.
    private var bytes: [UInt8] = []

    public init(capacity: Int = 4096, limit: Int = FileReader.defaultLimit) {
        self.capacity = max(64, capacity)
        self.limit = limit
        self.scratch = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
        bytes.reserveCapacity(self.capacity)
    }

    deinit { scratch.deallocate() }

    /// Reads all of `descriptor` from offset 0: pread(2) of the whole capacity, again with twice the
    /// capacity while a read fills it, so the bytes always come from one read at offset 0. A short
    /// read is the end of the file: the kernel's seq_file (/proc) fills a read until its end, a
    /// sysfs or cgroupfs attribute is produced whole by one show(), and a regular file only reads
    /// short at its end. Returns the errno of a failed read; the caller names the file.
    func read(_ descriptor: Int32) -> Result<[UInt8], ReadFailure> {
        while true {
            let count = pread(descriptor, scratch, capacity, 0)
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(.errno(errno))
            }
            if count < capacity {
                bytes.removeAll(keepingCapacity: true)
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: count))
                return .success(bytes)
            }
            // Filled: the file may be longer. Grow and read it again from 0.
            guard capacity <= limit else { return .failure(.tooLarge) }
            scratch.deallocate()
            capacity *= 2
            scratch = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }
    }

    enum ReadFailure: Error {
        case errno(Int32)
        case tooLarge
    }
}

/// How many descriptors kept files may hold in this process together.
///
/// Kept files trade a descriptor for the open(2) and close(2) of every read. A descriptor that
/// cannot be counted in this budget is still opened for the read at hand and closed after it, as
/// every file was before files were kept, so a host with more instances than the limit allows
/// is metered at the old cost instead of failing with EMFILE. The budget is the soft
/// RLIMIT_NOFILE less a reserve for what else the agent opens (the database, its journal and WAL,
/// API and sink connections, manifests being read): at the systemd unit's `LimitNOFILE=65536` that
/// is 64,512 descriptors, about 9,000 VMs of one tap each (7 descriptors per VM, see
/// `KeptInstanceFiles`); at the common default soft limit of 1,024 nothing is kept beyond
/// `reserve`'s half.
public enum DescriptorBudget {
    /// Descriptors left to other uses, or half the limit when the limit is small.
    public static let reserve = 1024

    private static let used = Atomic<Int>(0)

    /// Kept descriptors in this process now.
    public static var inUse: Int { used.load(ordering: .relaxed) }

    /// The most descriptors kept files may hold.
    public static let limit: Int = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let soft = limit.rlim_cur == rlim_t.max ? Int.max / 2 : Int(clamping: limit.rlim_cur)
        return max(0, soft - min(reserve, soft / 2))
    }()

    /// Takes one descriptor from the budget; false when it is spent.
    static func acquire() -> Bool {
        let after = used.wrappingAdd(1, ordering: .relaxed).newValue
        if after <= limit { return true }
        used.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    static func release() { used.wrappingSubtract(1, ordering: .relaxed) }
}

/// A /proc, /sys or cgroup file kept open between samples and read again from offset 0 with
/// pread(2): one system call per read instead of open, read and close, and no path walk.
///
/// A kept descriptor stays tied to the kernel object it was opened on. When the object goes (a
/// cgroup removed, a network device deleted) the kernel fails reads on it (ENODEV from kernfs,
/// which backs sysfs and cgroupfs), and the file is closed: its owner opens it again by path,
/// finding the new object or none. A file on another filesystem (a fixture tree, a copy of /proc
/// in a test; told apart by its device number) is checked with fstat(2) at each read instead: removed or replaced by a rename, it
/// has no links left and counts as gone too (ESTALE).
///
/// Not thread-safe: each owner reads its files under its own lock or from one thread.
public final class KeptFile {
    /// The directory it was opened in, if any: the caller's string, shared rather than copied,
    /// so that a kept file costs no path of its own (7 per VM add up over 1,000 VMs).
    private let directory: String?
    /// The name in `directory`, or the whole path.
    private let name: String
    private let descriptor: Int32
    /// On procfs, sysfs or cgroupfs, where removal shows as a failed read.
    private let isKernelFile: Bool
    /// Whether the descriptor is counted in `DescriptorBudget`: only such a file may be kept.
    public let isKept: Bool

    /// The file's path, for error messages.
    public var path: String { directory.map { $0 + "/" + name } ?? name }

    private init(directory: String?, name: String, descriptor: Int32) {
        self.directory = directory
        self.name = name
        self.descriptor = descriptor
        self.isKernelFile = Self.isKernelFilesystem(descriptor)
        self.isKept = DescriptorBudget.acquire()
    }

    deinit {
        close(descriptor)
        if isKept { DescriptorBudget.release() }
    }

    /// Opens `path`; nil when it does not exist (ENOENT, or ENOTDIR for a missing directory on
    /// the way).
    public static func open(_ path: String) throws(ProbeError) -> KeptFile? {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        return try wrap(descriptor, directory: nil, name: path)
    }

    /// Opens `name` in an open directory, the cgroup's or the interface's; nil when there is no
    /// such file.
    static func open(_ name: String, in directory: borrowing OpenDirectory) throws(ProbeError) -> KeptFile? {
        let descriptor = openat(directory.descriptor, name, O_RDONLY | O_CLOEXEC)
        return try wrap(descriptor, directory: directory.path, name: name)
    }

    private static func wrap(_ descriptor: Int32, directory: String?, name: String) throws(ProbeError) -> KeptFile? {
        guard descriptor >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return nil }
            throw .unreadable(path: directory.map { $0 + "/" + name } ?? name, errno: code)
        }
        return KeptFile(directory: directory, name: name, descriptor: descriptor)
    }

    /// The whole file as it is now, read into `buffer` (the returned array shares its storage
    /// until the next read). Throws `.unreadable` with the read's errno, ESTALE for a non-kernel
    /// file that was removed or replaced, or `.tooLarge`; after an error the descriptor is of no
    /// further use and its owner drops it.
    public func read(into buffer: ReadBuffer) throws(ProbeError) -> [UInt8] {
        if !isKernelFile {
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw .unreadable(path: path, errno: errno) }
            guard info.st_nlink > 0 else { throw .unreadable(path: path, errno: ESTALE) }
        }
        switch buffer.read(descriptor) {
        case .success(let bytes): return bytes
        case .failure(.errno(let code)): throw .unreadable(path: path, errno: code)
        case .failure(.tooLarge): throw .tooLarge(path: path, limit: buffer.limit)
        }
    }

    /// For a mount table of procfs (/proc/PID/mounts, /proc/PID/mountinfo): true when the kernel
    /// reports no change of the mount namespace since this descriptor was opened or last asked.
    /// Those files signal a change with POLLPRI, and asking consumes the signal. False for any
    /// other file, which must simply be read.
    func mountTableUnchanged() -> Bool {
        guard isKernelFile else { return false }
        var entry = pollfd(fd: descriptor, events: Int16(POLLPRI), revents: 0)
        return poll(&entry, 1, 0) == 0
    }

    /// The devices of this process's procfs, sysfs and cgroup mounts, from its mount table read
    /// once: a file on one of them is a kernel file. A file on a filesystem mounted later is
    /// checked with fstat(2) at each read, which costs a little and is still right.
    private static let kernelDevices: Set<UInt64> = {
        guard let mounts = try? ProcFS().mountinfo() else { return [] }
        let kinds: Set<String> = ["proc", "sysfs", "cgroup", "cgroup2"]
        return Set(mounts.filter { kinds.contains($0.fsType) }.map { DeviceNumber.make(major: $0.major, minor: $0.minor) })
    }()

    private static func isKernelFilesystem(_ descriptor: Int32) -> Bool {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return kernelDevices.contains(UInt64(info.st_dev))
    }
}

/// One file by its path, kept open between reads and opened again when its descriptor fails: what
/// a host collector reads (/proc/stat, /proc/net/dev…), with its own buffer. Sendable: reads are
/// serialised by a lock.
public final class KeptPath: Sendable {
    public let path: String
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var file: KeptFile?
        let buffer: ReadBuffer
    }

    /// `capacity`: the first buffer size, enough for the file on a typical host so that the first
    /// read needs no second try.
    public init(_ path: String, capacity: Int = 4096, limit: Int = FileReader.defaultLimit) {
        self.path = path
        self.state = Mutex(State(file: nil, buffer: ReadBuffer(capacity: capacity, limit: limit)))
    }

    /// Whether a descriptor is held now.
    public var isOpen: Bool { state.withLock { $0.file != nil } }

    /// The file's bytes parsed by `parse`. A kept descriptor that fails to read is closed and the
    /// file opened again by path once, within this read; an error on the fresh descriptor is
    /// thrown. A file that does not exist throws `.unreadable` with ENOENT, as `FileReader.read`.
    public func read<Value: Sendable>(
        _ parse: ([UInt8], String) throws(ProbeError) -> Value
    ) throws(ProbeError) -> Value {
        try state.withLock { (state: inout State) throws(ProbeError) -> Value in
            if let kept = state.file {
                do throws(ProbeError) {
                    return try parse(try kept.read(into: state.buffer), path)
                } catch {
                    // Content that does not parse is thrown as it is; the descriptor is dropped
                    // all the same, so the next read starts afresh.
                    state.file = nil
                    guard case .unreadable = error else { throw error }
                }
            }
            guard let fresh = try KeptFile.open(path) else { throw .unreadable(path: path, errno: ENOENT) }
            let bytes = try fresh.read(into: state.buffer)
            if fresh.isKept { state.file = fresh }
            return try parse(bytes, path)
        }
    }

    /// Like `read`, for a procfs mount table: nil, without reading, when the kernel reports the
    /// mount table unchanged since the previous read on the kept descriptor (see
    /// `KeptFile.mountTableUnchanged`). A fresh descriptor, or any other file, is always read.
    public func readIfMountTableChanged<Value: Sendable>(
        _ parse: ([UInt8], String) throws(ProbeError) -> Value
    ) throws(ProbeError) -> Value? {
        let unchanged = state.withLock { $0.file?.mountTableUnchanged() ?? false }
        return unchanged ? nil : try read(parse)
    }

    /// Closes the descriptor; the next read opens the file again.
    public func close() { state.withLock { $0.file = nil } }
}
