import Foundation
import Outbox
import Testing

@testable import Shipping

#if canImport(Glibc)
import Glibc
#endif

/// The stdout sink on real pipes: a reader that went away fails the batch for a retry instead of
/// ending the process, and a retry after a write that stopped inside a line starts a new line.
@Suite struct StdoutSinkTests {
    static func event(_ id: String, padding: Int = 10) -> OutboxEvent {
        OutboxEvent(
            eventID: id, eventType: "resource_usage", instanceID: "vm-1", periodStart: 0, periodEnd: 30,
            payload: Data(#"{"event_id":"\#(id)","pad":"\#(String(repeating: "p", count: padding))"}"#.utf8))
    }

    /// A pipe whose ends close with the value.
    final class TestPipe {
        var read: Int32
        var write: Int32
        init() throws {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            (read, write) = (ends[0], ends[1])
        }
        func closeRead() {
            if read >= 0 { close(read) }
            read = -1
        }
        deinit {
            closeRead()
            close(write)
        }

        /// Everything in the pipe now (the read end is made non-blocking).
        func drain() -> String {
            _ = fcntl(read, F_SETFL, fcntl(read, F_GETFL) | O_NONBLOCK)
            var data = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            // Bounded by what the pipe holds (64 KiB by default).
            for _ in 0..<1000 {
                let count = Glibc.read(read, &buffer, buffer.count)
                guard count > 0 else { break }
                data += buffer.prefix(count)
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    @Test func aBatchIsWrittenAsJSONLines() async throws {
        let pipe = try TestPipe()
        let sink = StdoutSink(descriptor: pipe.write)
        #expect(await sink.send([Self.event("a"), Self.event("b")]) == .delivered)
        #expect(pipe.drain() == #"{"event_id":"a","pad":"pppppppppp"}"# + "\n" + #"{"event_id":"b","pad":"pppppppppp"}"# + "\n")
    }

    @Test func aPipeWithoutAReaderFailsTheBatchForARetry() async throws {
        // As `hostmeter run` (and systemd) has it: a write to a pipe without a reader fails with
        // EPIPE instead of raising SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let pipe = try TestPipe()
        pipe.closeRead()
        let sink = StdoutSink(descriptor: pipe.write)
        let outcome = await sink.send([Self.event("a")])
        guard case .retryable(let reason, let detail, let retryAfter) = outcome else {
            Issue.record("expected a retryable failure, got \(outcome)")
            return
        }
        #expect(reason == .io && retryAfter == nil)
        #expect(detail == "write stdout: Broken pipe")
    }

    @Test func aRetryAfterATornLineStartsANewLine() async throws {
        let pipe = try TestPipe()
        // A full non-blocking pipe that nobody reads: the write stops inside the batch after
        // waiting a second for room.
        _ = fcntl(pipe.write, F_SETFL, fcntl(pipe.write, F_GETFL) | O_NONBLOCK)
        let sink = StdoutSink(descriptor: pipe.write)
        let batch = [Self.event("a", padding: 50_000), Self.event("b", padding: 50_000)]
        guard case .retryable(.io, _, _) = await sink.send(batch) else {
            Issue.record("a full pipe should fail the batch")
            return
        }
        let torn = pipe.drain()
        #expect(!torn.isEmpty && !torn.hasSuffix("\n"), "\(torn.count) bytes")

        // The retry ends the torn line first; every whole line after it is a whole event.
        #expect(await sink.send([Self.event("c")]) == .delivered)
        #expect(pipe.drain() == "\n" + #"{"event_id":"c","pad":"pppppppppp"}"# + "\n")
        #expect(await sink.send([Self.event("d")]) == .delivered)
        #expect(pipe.drain() == #"{"event_id":"d","pad":"pppppppppp"}"# + "\n")
    }
}
