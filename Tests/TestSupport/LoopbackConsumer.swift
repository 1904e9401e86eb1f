import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// The test consumer (scripts/consumer.py) as a real process on 127.0.0.1: it stores events once
/// by event_id into SQLite and misbehaves on request through its control port. Killed and its
/// folder removed by `stop()` or on release.
public final class LoopbackConsumer: @unchecked Sendable {
    public let process: Process
    public let directory: URL
    /// The port that takes events.
    public let port: Int
    /// The port that takes fault modes and answers with what it received.
    public let controlPort: Int

    public var eventsURL: String { "http://127.0.0.1:\(port)/events" }
    public var cloudEventsURL: String { "http://127.0.0.1:\(port)/cloudevents" }

    /// Starts the consumer and waits (at most 10 s) for the ports it writes to its port file.
    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("consumer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("ports.json")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", TestPaths.file("scripts/consumer.py").path,
            "--db", directory.appendingPathComponent("consumer.sqlite").path, "--port-file", portFile.path, "--quiet",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var ports: [String: Int]?
        for _ in 0..<100 {
            if let data = try? Data(contentsOf: portFile),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int]
            {
                ports = object
                break
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard let ports, let port = ports["port"], let control = ports["control_port"] else {
            process.terminate()
            throw CocoaError(
                .fileReadNoSuchFile,
                userInfo: [NSLocalizedDescriptionKey: "consumer did not start (python3 scripts/consumer.py; run scripts/deps.sh --test)"])
        }
        self.port = port
        self.controlPort = control
    }

    deinit { stop() }

    /// Kills the consumer and removes its folder; safe to call twice.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Sets a fault mode: {"mode": …} plus its parameters (scripts/consumer.py says which).
    public func setMode(_ mode: [String: Any]) async throws {
        _ = try await control("POST", "/mode", body: mode)
    }

    /// `GET /stats` of the control port.
    public struct Stats: Decodable, Sendable {
        public let requests: Int
        public let unique_events: Int
        public let deliveries: Int
        public let duplicates: Int
        public let conflicts: Int
        public let by_status: [String: Int]
    }

    public func stats() async throws -> Stats {
        try JSONDecoder().decode(Stats.self, from: try await control("GET", "/stats", body: nil))
    }

    /// The recorded ingest requests: path, status, idempotency_key, content_type, authorization.
    public func requests() async throws -> [[String: Any]] {
        let data = try await control("GET", "/requests", body: nil)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    /// The stored events, decoded.
    public func events() async throws -> [[String: Any]] {
        let data = try await control("GET", "/events", body: nil)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    /// One control request, at most 10 s and 64 MiB of answer; an error unless it is answered 200.
    private func control(_ method: String, _ path: String, body: [String: Any]?) async throws -> Data {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(controlPort)\(path)")
        request.method = HTTPMethod(rawValue: method)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "control \(path): \(response.status)"])
        }
        return Data(buffer.readableBytesView)
    }
}
