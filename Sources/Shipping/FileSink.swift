import Foundation
public import Outbox

#if canImport(Glibc)
import Glibc
#endif

/// Appends events as JSON lines to a file, flushed and fsynced per batch: the default sink, which
/// works with no consumer at all. A write that fails (disk full) is retryable; the events stay in
/// the outbox.
public struct FileSink: EventSink {
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
public struct StdoutSink: EventSink {
    public var type: String { "stdout" }

    public init() {}

    public func send(_ batch: [OutboxEvent]) async -> ShipOutcome {
        var data = Data()
        for event in batch {
            data.append(event.payload)
            data.append(UInt8(ascii: "\n"))
        }
        FileHandle.standardOutput.write(data)
        return .delivered
    }

    public func shutdown() async {}
}
