import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter run` with the stdout sink and its stdout and stderr on pipes whose readers go away
/// (a `| head`, a log collector that died). Under systemd SIGPIPE is ignored, so each write fails
/// with EPIPE; without that the signal would end the agent. Either way the agent must run on: a
/// batch that cannot be written stays in the outbox and is retried, a log line that cannot be
/// written is dropped and counted. The real binary, real pipes; every wait has a deadline.
@Suite(.serialized, .timeLimit(.minutes(3))) struct BrokenPipeTests {
    @Test(arguments: [true, false])
    func aReaderThatGoesAwayDoesNotStopTheAgent(sigpipeIgnored: Bool) async throws {
        let scratch = try AgentScratch()
        defer { scratch.remove() }
        // debug: a line per closed period, so log lines keep coming after the readers are gone.
        try scratch.writeConfig(
            """
            sink:
              type: stdout
            log:
              level: debug
            retry:
              base_seconds: 0.1
              cap_seconds: 0.5
            """)
        let out = try OSPipe()
        let err = try OSPipe()
        let agent = try AgentChild(
            scratch, shell: sigpipeIgnored ? "trap '' PIPE" : "", stdout: out.writeHandle, stderr: err.writeHandle)
        defer { agent.kill() }
        out.closeWriteEnd()
        err.closeWriteEnd()

        let log = err.read(within: 30) { $0.contains("msg=ready") && (try? AgentChild.apiPort(in: $0)) != nil }
        let port = try AgentChild.apiPort(in: log)
        // The readers go away: from now on every write to stdout or stderr fails.
        out.closeReadEnd()
        err.closeReadEnd()
        let before = try Self.sampledAt(port: port)

        // A few periods: each closed period logs a line and brings a batch for stdout.
        try await Task.sleep(for: .milliseconds(4000))
        guard agent.isRunning else {
            let exit = await agent.waitForExit(within: 1)
            Issue.record("the agent ended: \(exit)")
            return
        }
        let after = try Self.sampledAt(port: port)
        #expect(after > before, "no sample since the readers went away (sampled_at \(before) then \(after))")

        let metrics = try LoopbackHTTP.get(port: port, path: "/metrics").body
        let dropped = Self.value(of: "hostmeter_log_lines_dropped_total", in: metrics)
        #expect((dropped ?? 0) > 0, "log lines dropped: \(String(describing: dropped))")
        let failed = Self.value(of: #"hostmeter_ship_failures_total{reason="io"}"#, in: metrics)
        #expect((failed ?? 0) > 0, "stdout batches failed: \(String(describing: failed))")
        let outbox = try LoopbackHTTP.get(port: port, path: "/outbox").json
        #expect((outbox["pending_events"] as? Int ?? 0) > 0, "the batches that could not be written are kept: \(outbox)")
        #expect(outbox["dead_letters"] as? Int == 0, "\(outbox)")

        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0))
    }

    /// `sampled_at` of `GET /get`.
    static func sampledAt(port: Int) throws -> Double {
        let response = try LoopbackHTTP.get(port: port, path: "/get")
        return try #require(response.json["sampled_at"] as? Double, "\(response.body)")
    }

    /// The value of the sample line `name value` in a Prometheus text exposition.
    static func value(of name: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

/// A pipe whose ends are close-on-exec, so a child gets only the end handed to it (as its stdout or
/// stderr) and the test alone holds the read end: closing it leaves the writer without a reader.
final class OSPipe {
    private var readEnd: Int32
    let writeHandle: FileHandle

    init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        // pipe2 is not imported; a child started meanwhile by another test may inherit an end
        // until this runs, which only delays that end's closing there.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        readEnd = ends[0]
        writeHandle = FileHandle(fileDescriptor: ends[1], closeOnDealloc: true)
    }

    deinit { closeReadEnd() }

    /// After the child started: the child holds its own copy.
    func closeWriteEnd() { try? writeHandle.close() }

    func closeReadEnd() {
        if readEnd >= 0 { close(readEnd) }
        readEnd = -1
    }

    /// Reads until `predicate` holds for all read so far, the writer closes, or `seconds` pass.
    func read(within seconds: Double, until predicate: (String) -> Bool) -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16384)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, data.count < 4 << 20, readEnd >= 0 {
            var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let count = Glibc.read(readEnd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            data += buffer.prefix(count)
            if predicate(String(decoding: data, as: UTF8.self)) { break }
        }
        return String(decoding: data, as: UTF8.self)
    }
}
