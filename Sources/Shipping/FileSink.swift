import Foundation
public import Outbox
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Appends events as JSON lines to a file, flushed and fsynced per batch: the default sink, which
/// works with no consumer at all. A write that fails (disk full) is retryable; the events stay in
/// the outbox.
public struct FileSink: Sink {
    public let path: String
    public var type: String { "file" }

    public init(path: String) { self.path = path }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        var data = Data()
        for event in batch {
            data.append(event.payload)
            data.append(UInt8(ascii: "\n"))
        }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            return .retryable(reason: .io, detail: "open \(path): \(String(cString: strerror(errno)))", retryAfter: nil)
        }
        defer { close(descriptor) }
        // Where this batch starts: a failed write is cut back to it, so a retry never leaves a
        // half line in front of the full one.
        let start = lseek(descriptor, 0, SEEK_END)
        let written = data.withUnsafeBytes { raw -> Int in
            var offset = 0
            while offset < raw.count {
                let count = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                offset += count
            }
            return offset
        }
        guard written == data.count else {
            let reason = String(cString: strerror(errno))
            if start >= 0 { _ = ftruncate(descriptor, start) }
            return .retryable(reason: .io, detail: "write \(path): \(reason)", retryAfter: nil)
        }
        guard fsync(descriptor) == 0 else {
            return .retryable(reason: .io, detail: "fsync \(path): \(String(cString: strerror(errno)))", retryAfter: nil)
        }
        return .delivered
    }

    public func shutdown() async {}
}

/// Writes events as JSON lines to standard output.
///
/// A write that fails (the reader went away: EPIPE; a full disk behind a redirect) is retryable:
/// the events stay in the outbox and the agent runs on. A pipe cannot be cut back like a file, so
/// a batch that stopped inside a line starts its retry with a newline: the torn line stays torn,
/// but every full line is a whole event.
public final class StdoutSink: Sink {
    public var type: String { "stdout" }
    private let descriptor: Int32
    /// Whether the last write stopped inside a line.
    private let torn = Mutex(false)

    /// - Parameter descriptor: standard output (1); another descriptor in tests.
    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
    }

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        var data = Data()
        if torn.withLock({ $0 }) { data.append(UInt8(ascii: "\n")) }
        for event in batch {
            data.append(event.payload)
            data.append(UInt8(ascii: "\n"))
        }
        let result = data.withUnsafeBytes { DescriptorWriter.write($0, to: descriptor) }
        guard let error = result.error else {
            torn.withLock { $0 = false }
            return .delivered
        }
        // Torn when it stopped after writing something that did not end a line.
        if result.written > 0 { torn.withLock { $0 = data[data.startIndex + result.written - 1] != UInt8(ascii: "\n") } }
        return .retryable(reason: .io, detail: "write stdout: \(DescriptorWriter.describe(error))", retryAfter: nil)
    }

    public func shutdown() async {}
}
