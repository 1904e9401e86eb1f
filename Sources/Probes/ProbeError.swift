#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a kernel file could not be turned into a value.
///
/// Every case names the file, and `malformed` also the 1-based line, so an operator can open the
/// file and see what the kernel (or a broken fixture) wrote.
public enum ProbeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// open(2) or read(2) failed; `errno` is the C error number.
    case unreadable(path: String, errno: Int32)
    /// The file was larger than the cap the reader allows; nothing was parsed.
    case tooLarge(path: String, limit: Int)
    /// The file was read but its content does not have the expected shape.
    /// `line` is 1-based; 0 means the problem is with the file as a whole (a missing line, say).
    case malformed(path: String, line: Int, reason: String)
    /// A system call other than read failed (statvfs, say).
    case systemCall(name: String, path: String, errno: Int32)
    /// What a probe was asked about does not exist: a cgroup, a network interface, a disk image.
    /// For a VM's cgroup or tap this means the VM is not running, which is news, not a fault.
    case missing(path: String)
    /// The request cannot be served as asked: a string that is not a valid interface name, a disk
    /// path that names a directory, no cgroup hierarchy mounted. `path` is what was asked for.
    case invalid(path: String, reason: String)

    public var path: String {
        switch self {
        case .unreadable(let path, _), .tooLarge(let path, _), .malformed(let path, _, _),
            .systemCall(_, let path, _), .missing(let path), .invalid(let path, _):
            return path
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let errno):
            return "cannot read \(path): \(errorString(errno))"
        case .tooLarge(let path, let limit):
            return "\(path) is larger than the \(limit)-byte limit"
        case .malformed(let path, let line, let reason):
            return line > 0 ? "\(path):\(line): \(reason)" : "\(path): \(reason)"
        case .systemCall(let name, let path, let errno):
            return "\(name)(\(path)) failed: \(errorString(errno))"
        case .missing(let path):
            return "\(path) does not exist"
        case .invalid(let path, let reason):
            return "\(path): \(reason)"
        }
    }

    /// Whether the error says the thing is not there (`missing`, or a read that failed with ENOENT)
    /// rather than that it is broken: callers mark such an instance "not running".
    public var isMissing: Bool {
        switch self {
        case .missing: return true
        case .unreadable(_, let code): return code == ENOENT
        default: return false
        }
    }
}
