import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Outbox
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// The test consumer (scripts/consumer.py) as a real process on 127.0.0.1: dedupes by event_id
/// into SQLite and misbehaves on request through its control port.
final class LoopbackConsumer: @unchecked Sendable {
    let process: Process
    let directory: URL
    let port: Int
    let controlPort: Int

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    var eventsURL: String { "http://127.0.0.1:\(port)/events" }
    var cloudEventsURL: String { "http://127.0.0.1:\(port)/cloudevents" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("consumer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("ports.json")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Self.packageRoot.appendingPathComponent("scripts/consumer.py").path,
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
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "consumer did not start (python3 scripts/consumer.py; run scripts/deps.sh --test)"])
        }
        self.port = port
        self.controlPort = control
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Sets a fault mode: {"mode": …} plus its parameters.
    func setMode(_ mode: [String: Any]) async throws {
        _ = try await control("POST", "/mode", body: mode)
    }

    struct Stats: Decodable {
        let requests: Int
        let unique_events: Int
        let deliveries: Int
        let duplicates: Int
        let conflicts: Int
        let by_status: [String: Int]
    }

    func stats() async throws -> Stats {
        try JSONDecoder().decode(Stats.self, from: try await control("GET", "/stats", body: nil))
    }

    /// The recorded ingest requests: path, status, idempotency_key, content_type, authorization.
    func requests() async throws -> [[String: Any]] {
        let data = try await control("GET", "/requests", body: nil)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

    /// The stored events, decoded.
    func events() async throws -> [[String: Any]] {
        let data = try await control("GET", "/events", body: nil)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }

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

/// A temporary outbox filled with contiguous usage events of one instance.
struct FilledOutbox {
    let database: AgentDatabase
    let directory: URL
    let eventIDs: [String]

    init(events count: Int, instance: String = "vm-1") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        database = try AgentDatabase.open(path: directory.appendingPathComponent("hostmeter.sqlite").path)
        let encoder = UsageEventEncoder()
        var events: [OutboxEvent] = []
        var ids: [String] = []
        for index in 0..<count {
            let period = Period(start: 1_763_726_400 + Int64(index) * 30, end: 1_763_726_430 + Int64(index) * 30)
            let event = UsageEvent(
                hostID: "host-1", instanceID: instance, userID: "u-1", orgID: nil, period: period,
                metrics: UsageMetrics(cpuSeconds: Int64(index % 7), memoryGB: 1.5, storageGB: 20), timestamp: period.end)
            ids.append(event.eventID)
            events.append(
                OutboxEvent(
                    eventID: event.eventID, eventType: event.eventType, instanceID: instance,
                    periodStart: period.start, periodEnd: period.end, payload: try encoder.encode(event)))
        }
        try database.commit(MeteringCommit(events: events))
        eventIDs = ids
    }
}
