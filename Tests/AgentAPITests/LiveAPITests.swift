import AgentAPI
import AsyncHTTPClient
import Foundation
import HostMeterAgent
import Logging
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The output of a tool run to completion (killed at `timeout`).
struct ToolResult {
    var status: Int32
    var output: String
}

/// Waits with `Task.sleep`, never `Thread.sleep`: schemathesis runs for minutes, and a blocked
/// thread of the shared pool would starve every other test's servers and services meanwhile.
func runTool(_ arguments: [String], timeout: TimeInterval) async throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("tool-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    let handle = try FileHandle(forWritingTo: output)
    defer {
        try? handle.close()
        try? FileManager.default.removeItem(at: output)
    }
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline {
        try await Task.sleep(for: .milliseconds(50))
    }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus, output: (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}

func toolExists(_ name: String) async -> Bool {
    (try? await runTool(["sh", "-c", "command -v \(name)"], timeout: 10).status) == 0
}

/// A real agent (sampler, shipper to a file, API) on a loopback port the OS picks.
struct LiveAgent {
    let directory: URL
    let port: Int
    let task: Task<Void, any Error>

    static func start(extraYAML: String = "") async throws -> LiveAgent {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let configuration = try AgentConfiguration.parse(
            """
            host_id: live-host
            interval_seconds: 2
            sample_seconds: 1
            state_dir: \(directory.path)
            api:
              listen: 127.0.0.1:0
            \(extraYAML)
            """)
        var logger = Logger(label: "live")
        logger.logLevel = .warning
        let runtime = try Agent.build(configuration: configuration, logger: logger)
        let task = Task { try await runtime.serviceGroup.run() }
        let port = try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask { await runtime.apiPort.wait() }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let port else {
            task.cancel()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "the API did not listen within 20 s"])
        }
        // Wait (bounded) for the first sample so /get has a host.
        for _ in 0..<100 where runtime.state.snapshot.lastSample == nil {
            try await Task.sleep(for: .milliseconds(50))
        }
        return LiveAgent(directory: directory, port: port, task: task)
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stop() async {
        task.cancel()
        _ = await task.result
        try? FileManager.default.removeItem(at: directory)
    }

    func get(_ path: String, method: HTTPMethod = .GET, body: String? = nil, headers: [(String, String)] = [])
        async throws -> (status: Int, body: String, contentType: String?)
    {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), String(buffer: bytes), response.headers.first(name: "content-type"))
    }
}

@Suite(.serialized) struct LiveAPITests {
    @Test func servesOverLoopbackAndMetricsPassPromtool() async throws {
        let agent = try await LiveAgent.start()
        do {
            let current = try await agent.get("/get")
            #expect(current.status == 200)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(current.body.utf8)) as? [String: Any])
            #expect(body["host_id"] as? String == "live-host")
            let host = try #require(body["host"] as? [String: Any], "no host sample in \(current.body.prefix(300))")
            #expect(host["memory"] != nil)
            let instances = try #require(body["instances"] as? [[String: Any]])
            #expect(instances.first?["instance_id"] as? String == "live-host")

            let health = try await agent.get("/health")
            #expect(health.status == 200, "\(health.body)")

            let notFound = try await agent.get("/no/such/route", method: .POST, body: "{}")
            #expect(notFound.status == 404)
            #expect(notFound.contentType == "application/json")

            // The exposition, as Prometheus's own linter sees it.
            let metrics = try await agent.get("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("hostmeter_samples_total "))
            #expect(metrics.body.contains("hostmeter_instance_cpu_percent{instance_id=\"live-host\""))
            if await toolExists("promtool") {
                let file = agent.directory.appendingPathComponent("metrics.txt")
                try metrics.body.write(to: file, atomically: true, encoding: .utf8)
                let check = try await runTool(["sh", "-c", "promtool check metrics < '\(file.path)'"], timeout: 30)
                #expect(check.status == 0, "promtool check metrics: \(check.output)")
            } else {
                Issue.record("promtool is not installed (Debian package prometheus; scripts/deps.sh --test installs it)")
            }
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }

    /// schemathesis generates requests from docs/openapi.yaml, valid and invalid, and checks that
    /// no answer is a 5xx and every answer matches the document.
    @Test func schemathesisFindsNothing() async throws {
        guard await toolExists("schemathesis") else {
            Issue.record("schemathesis is not installed (pip install schemathesis; scripts/deps.sh --test installs it)")
            return
        }
        let agent = try await LiveAgent.start()
        let result: ToolResult
        do {
            let spec = TestPaths.file("docs/openapi.yaml").path
            result = try await runTool(
                [
                    "schemathesis", "run", spec, "--url", agent.base, "--max-examples", "40", "--seed", "20261121",
                    "--workers", "1", "--request-timeout", "10",
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ], timeout: 240)
            // The agent is still up and serving after everything schemathesis sent.
            let health = try await agent.get("/health")
            #expect(health.status == 200)
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
        #expect(result.status == 0, "schemathesis:\n\(result.output.suffix(6000))")
        #expect(result.output.contains("passed") || result.output.contains("No issues found"), "\(result.output.suffix(2000))")
    }
}
