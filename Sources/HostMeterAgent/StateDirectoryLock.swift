import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on `<state_dir>/hostmeter.lock`, held for the life of the agent: two agents on
/// one state directory would meter the same counters twice.
public final class StateDirectoryLock: Sendable {
    private let descriptor: Int32
    public let path: String

    /// Takes the lock or throws, naming the holder's pid when it wrote one.
    public init(directory: String) throws(ConfigurationError) {
        path = (directory as NSString).appendingPathComponent("hostmeter.lock")
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError(
                file: path, line: nil, key: "state_dir", message: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(descriptor, &buffer, buffer.count, 0)
            close(descriptor)
            let holder = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw ConfigurationError(
                file: path, line: nil, key: "state_dir",
                message: "another hostmeter (pid \(holder.isEmpty ? "unknown" : holder)) is running with this state directory")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }
}
