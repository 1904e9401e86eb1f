public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP/1.1 server on 127.0.0.1 that reads each request whole and answers every one with the
/// same status and body, then closes the connection. For answers scripts/consumer.py does not give
/// (a body far over the agent's read limit). Every wait is bounded: accept polls every 100 ms,
/// reads and writes time out after 2 s, and a request is read up to 16 MiB.
public final class FixedResponder: Sendable {
    /// The loopback port it listens on.
    public let port: Int
    private let listener: Int32
    private let status: Int
    private let body: Data
    private let state = Mutex((requests: 0, stopped: false))
    private let finished = DispatchSemaphore(value: 0)

    /// Listens on a free loopback port and answers every request with `status` and `body`.
    public init(status: Int, body: Data) throws {
        self.status = status
        self.body = body
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && listen(descriptor, 16) == 0
                    && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else {
            let error = errno
            close(descriptor)
            throw POSIXError(.init(rawValue: error) ?? .EIO)
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// Requests answered so far.
    public var requests: Int { state.withLock { $0.requests } }

    /// Stops accepting and waits (at most 5 s) for the server thread to end.
    public func stop() {
        state.withLock { $0.stopped = true }
        _ = finished.wait(timeout: .now() + 5)
        close(listener)
    }

    private func serve() {
        defer { finished.signal() }
        while !state.withLock({ $0.stopped }) {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            // Not inherited by a child process a test starts meanwhile (accept4 is not imported).
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard readRequest(client) else { return }
        state.withLock { $0.requests += 1 }
        let head = "HTTP/1.1 \(status) Status\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n"
            + "Connection: close\r\n\r\n"
        var response = Data(head.utf8)
        response.append(body)
        response.withUnsafeBytes { raw in
            var offset = 0
            // Bounded by the bytes to send: every round sends at least one or stops.
            while offset < raw.count {
                let sent = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0, errno == EINTR { continue }
                guard sent > 0 else { return }  // the client stopped reading, or went away
                offset += sent
            }
        }
    }

    /// Reads the head and a Content-Length body. False when the client sent no whole request.
    private func readRequest(_ client: Int32) -> Bool {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let limit = 16 << 20
        var expected: Int?
        while data.count < limit {
            if let expected, data.count >= expected { return true }
            let count = recv(client, &buffer, buffer.count, 0)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            data += buffer.prefix(count)
            if expected == nil, let end = Self.headEnd(data) {
                let head = String(decoding: data[..<end], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                expected = end + 4 + length
            }
        }
        return false
    }

    private static func headEnd(_ data: [UInt8]) -> Int? {
        let marker: [UInt8] = [13, 10, 13, 10]
        guard data.count >= 4 else { return nil }
        for index in 0...(data.count - 4) where data[index..<(index + 4)].elementsEqual(marker) {
            return index
        }
        return nil
    }
}
