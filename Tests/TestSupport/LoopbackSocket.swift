public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to 127.0.0.1 with every wait bounded: what a slow or idle client does,
/// byte by byte, without an HTTP client's pooling and retries in the way.
///
/// The socket is non-blocking and every wait is a short `Task.sleep` between checks, never a
/// blocking call: the tests run in parallel in one process, and a test that blocked a thread of
/// Swift's cooperative pool would starve the servers of other tests (and its own), whose
/// connections are accepted and answered on that pool.
public final class LoopbackSocket {
    public private(set) var descriptor: Int32
    /// How long a wait sleeps between two checks.
    public static let pollInterval = Duration.milliseconds(5)

    /// Connects to 127.0.0.1:`port`, waiting at most `timeout` seconds; nil when it did not connect.
    public init?(port: Int, timeout: Double = 2) async {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            guard errno == EINPROGRESS, await wait(for: Int16(POLLOUT), timeout: timeout) else {
                close()
                return nil
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else {
                close()
                return nil
            }
        }
    }

    deinit { close() }

    /// Closes the socket; safe to call twice.
    public func close() {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
        descriptor = -1
    }

    /// Writes all of `text`; false when the peer is gone (or did not take it within 2 s).
    @discardableResult
    public func send(_ text: String) async -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK, await wait(for: Int16(POLLOUT), timeout: 2) {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// What one wait for the peer gave.
    public enum Received: Equatable, Sendable {
        /// Bytes arrived.
        case data(String)
        /// The peer closed (end of file or reset).
        case closed
        /// Nothing within the wait.
        case nothing
    }

    /// Waits up to `timeout` seconds (0: only looks) for bytes or the end of the connection.
    public func receive(timeout: Double) async -> Received {
        guard await wait(for: Int16(POLLIN), timeout: timeout) else { return .nothing }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count > 0 { return .data(String(decoding: buffer.prefix(count), as: UTF8.self)) }
        if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return .nothing }
        return .closed
    }

    /// Everything the peer sends until it closes, waiting at most `timeout` seconds in all; nil
    /// when it was still open at the end.
    public func receiveUntilClosed(timeout: Double) async -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        while Date() < deadline {
            switch await receive(timeout: max(0, deadline.timeIntervalSinceNow)) {
            case .data(let more): text += more
            case .closed: return text
            case .nothing: continue
            }
        }
        return nil
    }

    /// Whether `events` became ready within `timeout` seconds: a non-blocking poll every 5 ms.
    private func wait(for events: Int16, timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, timeout) * 1000))
        while true {
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            if Glibc.poll(&entry, 1, 0) > 0 { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: Self.pollInterval)
        }
    }
}
