import Foundation
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter run` as systemd runs it: the real binary as a child process with its own state
/// directory, talking sd_notify to a datagram socket the test binds, reloading on SIGHUP, taking
/// overrides from the environment and stopping cleanly on SIGTERM. Every wait has a deadline.
@Suite(.serialized, .timeLimit(.minutes(3))) struct DaemonTests {
    @Test func speaksSdNotifyFromReadyToStopping() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-daemon")
        defer { scratch.remove() }
        // debug: the sampler logs each closed period, so the test knows when one has closed.
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "debug")
        let notify = try NotifySocket(path: scratch.directory.appendingPathComponent("notify.sock").path)
        let agent = try startAgent(
            scratch, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        defer { agent.kill() }

        let ready = notify.next(within: 30) { $0.split(separator: "\n").contains("READY=1") }
        let readyMessage = try #require(ready, "no READY=1; received \(notify.received); stderr:\n\(agent.stderr)")
        #expect(notify.received.first == readyMessage, "READY=1 is the first message")
        #expect(readyMessage.contains("\nSTATUS=metering daemon-test every 2 s; API on port "), "\(readyMessage)")

        // WATCHDOG_USEC=1 s: a keep-alive every half second while samples are fresh.
        var watchdogs = 0
        while watchdogs < 2, notify.next(within: 3, where: { $0 == "WATCHDOG=1" }) != nil { watchdogs += 1 }
        #expect(watchdogs == 2, "received \(notify.received)")

        kill(agent.pid, SIGHUP)
        let reloading = notify.next(within: 10) { $0.hasPrefix("RELOADING=1\n") }
        let now = Self.monotonicMicros()
        let reloadingMessage = try #require(reloading, "no RELOADING=1; received \(notify.received)")
        // systemd ignores a RELOADING=1 whose MONOTONIC_USEC is not the current CLOCK_MONOTONIC.
        let micros = reloadingMessage.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }
            .flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }
        let stamp = try #require(micros, "\(reloadingMessage)")
        #expect(stamp <= now && now - stamp < 5_000_000, "MONOTONIC_USEC=\(stamp), now \(now)")
        #expect(notify.next(within: 10) { $0 == "READY=1" } != nil, "no READY=1 after the reload; received \(notify.received)")

        // A period (2 s) closes; the shipper may or may not have delivered it before the stop.
        #expect(
            await agent.waitForStderr(within: 15) { $0.contains("level=debug msg=\"period closed\"") },
            "no period closed; stderr:\n\(agent.stderr)")
        kill(agent.pid, SIGTERM)
        let stopping = notify.next(within: 15) { $0.hasPrefix("STOPPING=1") }
        let stoppingMessage = try #require(stopping, "no STOPPING=1; received \(notify.received)")
        #expect(stoppingMessage.contains("\nSTATUS="), "\(stoppingMessage)")
        let exit = await agent.waitForExit(within: 30)
        #expect(exit == .exited(0), "stderr:\n\(agent.stderr)")

        // Stopping drains the outbox: the closed period is in the file sink.
        let events = try scratch.deliveredEvents()
        #expect(!events.isEmpty, "no event in \(scratch.eventsFile.path)")
        for event in events {
            #expect(event.hostID == "daemon-test" && event.instanceID == "daemon-test")
            #expect(event.eventType == UsageEvent.eventType)
            #expect(event.period.end > event.period.start && event.period.end - event.period.start <= 2)
            #expect(event.eventID == UsageEvent.eventID(hostID: "daemon-test", instanceID: "daemon-test", period: event.period))
        }
    }

    @Test func sighupWithABadFileKeepsTheRunningConfiguration() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-daemon")
        defer { scratch.remove() }
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "info")
        let agent = try startAgent(scratch)
        defer { agent.kill() }
        let port = try await agent.apiPort()
        #expect(await agent.waitForStderr(within: 30) { $0.contains("msg=ready") }, "stderr:\n\(agent.stderr)")
        let before = try Self.sampledAt(port: port)

        // The bad file also asks for debug logging: refused as a whole, so no debug line follows.
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "debug", "bogus_key: 1\n")
        kill(agent.pid, SIGHUP)
        #expect(
            await agent.waitForStderr(within: 10) { $0.contains("configuration reload refused") },
            "stderr:\n\(agent.stderr)")
        let refusal = agent.stderrLines.first { $0.contains("configuration reload refused") } ?? ""
        #expect(refusal.contains("level=error"), "\(refusal)")
        #expect(refusal.contains("bogus_key: unknown key"), "the refusal names the key: \(refusal)")
        #expect(refusal.contains("config=\(scratch.configFile.path)"), "\(refusal)")

        // Still running, sampling and answering; a period (2 s) passes without a debug line.
        try await Task.sleep(for: .milliseconds(2500))
        #expect(agent.isRunning)
        let health = try LoopbackHTTP.get(port: port, path: "/health")
        #expect(health.status == 200, "\(health.body)")
        let after = try Self.sampledAt(port: port)
        #expect(after > before, "no new sample after the refused reload (sampled_at \(before) then \(after))")
        #expect(!agent.stderr.contains("level=debug"), "the refused file's log level was applied")

        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "debug")
        kill(agent.pid, SIGHUP)
        #expect(
            await agent.waitForStderr(within: 10) { $0.contains("msg=\"configuration reloaded\"") && $0.contains("applied=log") },
            "stderr:\n\(agent.stderr)")
        let reloadedAt = agent.stderr.utf8.count
        #expect(
            await agent.waitForStderr(within: 10) { String(decoding: $0.utf8.dropFirst(reloadedAt), as: UTF8.self).contains("level=debug") },
            "no debug line after the reload; stderr:\n\(agent.stderr)")

        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }

    @Test func logFormatFromTheEnvironment() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-daemon")
        defer { scratch.remove() }
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "info")
        let agent = try startAgent(scratch, environment: ["HOSTMETER_LOG_FORMAT": "json"])
        defer { agent.kill() }
        #expect(
            await agent.waitForStderr(within: 30) { $0.contains(#""msg":"ready""#) }, "stderr:\n\(agent.stderr)")
        kill(agent.pid, SIGTERM)
        #expect(await agent.waitForExit(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")

        let lines = agent.stderrLines
        #expect(lines.count >= 3)
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["ts"] is String && object?["level"] is String && object?["msg"] is String, "not a JSON log line: \(line)")
        }
        let listening = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { $0["msg"] as? String == "API listening" }
        #expect((listening?["api.port"] as? String).flatMap(Int.init) != nil, "metadata are fields: \(String(describing: listening))")
    }

    @Test func unknownEnvironmentVariableExits2NamingIt() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-daemon")
        defer { scratch.remove() }
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "info")
        let agent = try startAgent(scratch, environment: ["HOSTMETER_BOGUS": "1"])
        defer { agent.kill() }
        #expect(await agent.waitForExit(within: 30) == .exited(2))
        #expect(agent.stderr.contains("HOSTMETER_BOGUS"), "stderr:\n\(agent.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.stateDirectory.path), "nothing starts on a bad configuration")
    }

    @Test func secondAgentOnTheSameStateDirectoryExits2() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-daemon")
        defer { scratch.remove() }
        try scratch.writeConfig(hostID: "daemon-test", intervalSeconds: 2, logLevel: "info")
        let first = try startAgent(scratch)
        defer { first.kill() }
        #expect(await first.waitForStderr(within: 30) { $0.contains("msg=ready") }, "stderr:\n\(first.stderr)")

        let second = try startAgent(scratch)
        defer { second.kill() }
        #expect(await second.waitForExit(within: 30) == .exited(2), "stderr:\n\(second.stderr)")
        #expect(
            second.stderr.contains("another hostmeter (pid \(first.pid)) is running with this state directory"),
            "stderr:\n\(second.stderr)")

        #expect(first.isRunning, "the first agent keeps running")
        kill(first.pid, SIGTERM)
        #expect(await first.waitForExit(within: 30) == .exited(0), "stderr:\n\(first.stderr)")
    }

    // MARK: Helpers

    static func monotonicMicros() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    /// `sampled_at` of `GET /get`: when the agent last sampled the host.
    static func sampledAt(port: Int) throws -> Double {
        let response = try LoopbackHTTP.get(port: port, path: "/get")
        #expect(response.status == 200, "\(response.body)")
        let object = try jsonObject(Data(response.body.utf8))
        return try #require(object["sampled_at"] as? Double, "\(response.body)")
    }
}

/// `hostmeter run` of `scratch`'s configuration (a 2 s period sampled every second, the API on a
/// free loopback port, the default file sink), with `environment` on top of the test's, its
/// stderr in a file of its own: a test may run two agents on one state directory.
extension DaemonTests {
    /// An idle agent sleeps: between two samples no thread of the process wakes. libdispatch's
    /// worker pool, Swift's default executor on Linux, arms a one-second monitor timer for the life
    /// of the process once its first worker starts (3 wake-ups in 3 s); the agent's executors
    /// (`ProcessExecutors`) keep every task off that pool. Fleet pacing is off here: with it the
    /// shipper sends each period at the host's offset after the boundary, a wake-up with a reason.
    @Test func anIdleAgentWakesNoThreadBetweenSamples() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-idle")
        defer { scratch.remove() }
        try """
            host_id: idle-test
            interval_seconds: 60
            sample_seconds: 60
            state_dir: \(scratch.stateDirectory.path)
            instances_dir: \(scratch.instancesDirectory.path)
            api:
              listen: 127.0.0.1:0
            sink:
              spread_seconds: 0
            """.write(to: scratch.configFile, atomically: true, encoding: .utf8)
        let agent = try startAgent(scratch)
        defer { agent.kill() }
        #expect(await agent.waitForStderr(within: 30) { $0.contains("msg=ready") }, "not ready; stderr:\n\(agent.stderr)")
        // Samples, probes and periods fall on wall-clock minutes: measure 4 s clear of one, after
        // the start-up work has settled.
        try await Task.sleep(for: .seconds(2))
        let second = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 60)
        if second > 50 || second < 5 { try await Task.sleep(for: .seconds((65 - second).truncatingRemainder(dividingBy: 60))) }
        let before = try #require(Self.wakeUps(of: agent.pid))
        try await Task.sleep(for: .seconds(4))
        let after = try #require(Self.wakeUps(of: agent.pid))
        let woken = after.filter { name, count in count > (before[name] ?? 0) }
            .map { name, count in "\(name): \(count - (before[name] ?? 0))" }
        #expect(woken.count <= 1 && after.values.reduce(0, +) - before.values.reduce(0, +) <= 1,
                "threads woke between samples: \(woken.sorted())")
        #expect(await agent.terminate(within: 30) == .exited(0), "stderr:\n\(agent.stderr)")
    }

    /// Voluntary context switches (sleeps ended) by thread, keyed by "TID name".
    static func wakeUps(of pid: Int32) -> [String: Int]? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
        var switches: [String: Int] = [:]
        for tid in tasks {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8) else { continue }
            let name = status.split(separator: "\n").first { $0.hasPrefix("Name:") }.map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) } ?? "?"
            let count = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
                .flatMap { Int($0.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") } ?? 0
            switches["\(tid) \(name)"] = count
        }
        return switches
    }
}

private func startAgent(_ scratch: AgentScratch, environment: [String: String] = [:]) throws -> AgentChild {
    let stderrFile = scratch.directory.appendingPathComponent("stderr-\(UUID().uuidString).log")
    return try AgentChild(scratch, stderrFile: stderrFile, environment: environment)
}

/// The receiving end of sd_notify: an AF_UNIX datagram socket bound at `path`, as systemd's.
private final class NotifySocket {
    let path: String
    private let descriptor: Int32
    /// Every message received so far, in order.
    private(set) var received: [String] = []

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        // sun_path holds the path and its terminating zero.
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(descriptor)
            throw POSIXError(.ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let error = errno
            close(descriptor)
            throw POSIXError(.init(rawValue: error) ?? .EIO)
        }
        // recv waits at most this long, so every wait below ends by its deadline.
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Receives until a message satisfies `predicate` (returned) or the deadline passes (nil).
    func next(within seconds: Double, where predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { continue }  // timed out (EAGAIN) or interrupted
            let message = String(decoding: buffer.prefix(count), as: UTF8.self)
            received.append(message)
            if predicate(message) { return message }
        }
        return nil
    }
}

