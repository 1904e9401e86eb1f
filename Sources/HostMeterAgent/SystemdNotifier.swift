import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol spoken directly: one datagram per message to the AF_UNIX socket named
/// by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Without the variable (not
/// started by systemd with Type=notify) every call does nothing.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?
    /// Half of `WATCHDOG_USEC`, when systemd wants keep-alives (and they are for this process).
    public let watchdogInterval: Duration?

    /// From `environment` (nil: the process's) for process `pid` (nil: this one).
    public init(environment: [String: String]? = nil, pid: Int32? = nil) {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let pid = pid ?? getpid()
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let text = environment["WATCHDOG_USEC"], let micros = UInt64(text), micros > 0,
            environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == pid }) ?? true
        {
            watchdogInterval = .microseconds(Int64(micros / 2))
        } else {
            watchdogInterval = nil
        }
    }

    public var isEnabled: Bool { socketPath != nil }

    /// Sends `message` (e.g. `READY=1\nSTATUS=…`). Returns false when it could not be sent; the
    /// agent goes on either way, since systemd's own timeouts handle a notifier that fails.
    @discardableResult
    public func notify(_ message: String) -> Bool {
        guard let socketPath else { return false }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        // An abstract name's length is exact; a path's includes its terminating zero.
        let length = MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1)
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { buffer in
                    sendto(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), socketAddress, socklen_t(length))
                }
            }
        }
        return sent == bytes.count
    }
}
