import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory with a configuration file for `hostmeter run`; the state directory is
/// `state` in it unless the configuration names another.
struct AgentScratch {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    var configFile: URL { directory.appendingPathComponent("hostmeter.yaml") }
    var stateDirectory: URL { directory.appendingPathComponent("state") }
    var stderrFile: URL { directory.appendingPathComponent("stderr.log") }

    /// Writes `host_id`, a 1 s period sampled every second, the API on a free loopback port and
    /// `state_dir` (unless `stateDirectory` is given), then `extra` (YAML at the top level).
    func writeConfig(stateDirectory: URL? = nil, _ extra: String = "") throws {
        try """
            host_id: child-test
            interval_seconds: 1
            sample_seconds: 1
            state_dir: \((stateDirectory ?? self.stateDirectory).path)
            api:
              listen: 127.0.0.1:0
            \(extra)
            """.write(to: configFile, atomically: true, encoding: .utf8)
    }

    func remove() {
        // A test may leave a directory without write permission behind.
        _ = try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// `hostmeter run --config F` as a child process, started through `/bin/sh -c` so a test can set
/// what a service manager sets before the agent starts (`umask 000`, `trap '' PIPE` for an ignored
/// SIGPIPE as under systemd): `exec` keeps both.
final class AgentChild {
    enum Exit: Equatable {
        case exited(Int32)
        case signalled(Int32)
        case stillRunning
    }

    let process = Process()
    /// Where stderr goes when the test did not give its own descriptor.
    let stderrFile: URL?

    /// - Parameters:
    ///   - shell: shell commands run before `exec` (e.g. `umask 000`).
    ///   - stdout, stderr: descriptors for the agent's standard output and error; by default
    ///     /dev/null and the scratch's `stderr.log`.
    init(_ scratch: AgentScratch, shell: String = "", stdout: FileHandle? = nil, stderr: FileHandle? = nil) throws {
        var environment = ProcessInfo.processInfo.environment.filter { name, _ in
            !name.hasPrefix("HOSTMETER_") && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].contains(name)
        }
        environment["LC_ALL"] = "C"
        // A crash ends the child at once: the runtime's backtracer would otherwise hold its
        // descriptors (and Process's view of it) for as long as it takes, and a test of a crash
        // would hang instead of failing.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(shell)\nexec \"$0\" run --config \"$1\"", TestPaths.hostmeter.path, scratch.configFile.path]
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout ?? FileHandle.nullDevice
        if let stderr {
            process.standardError = stderr
            stderrFile = nil
        } else {
            FileManager.default.createFile(atPath: scratch.stderrFile.path, contents: nil)
            let handle = try FileHandle(forWritingTo: scratch.stderrFile)
            process.standardError = handle
            stderrFile = scratch.stderrFile
            try process.run()
            try handle.close()
            return
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stderr: String { stderrFile.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? "" }

    /// Polls the stderr file until `predicate` holds; false at the deadline.
    func waitForStderr(within seconds: Double, _ predicate: (String) -> Bool) async -> Bool {
        await waitUntil(within: seconds) { predicate(stderr) }
    }

    /// The port from `msg="API listening" api.port=N` in the stderr file.
    func apiPort() async throws -> Int {
        try Self.apiPort(in: await waitForStderrMatch())
    }

    private func waitForStderrMatch() async -> String {
        _ = await waitForStderr(within: 30) { (try? Self.apiPort(in: $0)) != nil }
        return stderr
    }

    static func apiPort(in log: String) throws -> Int {
        let pattern = #/msg="API listening" api\.port=([0-9]+)/#
        guard let match = log.firstMatch(of: pattern), let port = Int(match.1) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no API port logged:\n\(log)"])
        }
        return port
    }

    /// How the agent ended, or `.stillRunning` at the deadline.
    func waitForExit(within seconds: Double) async -> Exit {
        _ = await waitUntil(within: seconds) { !process.isRunning }
        if process.isRunning { return .stillRunning }
        process.waitUntilExit()
        return process.terminationReason == .exit ? .exited(process.terminationStatus) : .signalled(process.terminationStatus)
    }

    /// SIGKILL if it still runs (a failed test must not leave an agent behind).
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass; whether it held.
func waitUntil(within seconds: Double, _ condition: () async throws -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(50))
    } while Date() < deadline
    return (try? await condition()) == true
}

/// One HTTP/1.1 request over loopback with a JSON body, for the consumer's control port. Send and
/// receive time out after 2 s; the answer is read until the server closes, at most 5 s and 1 MiB.
func loopbackRequest(port: Int, method: String, path: String, json: [String: Any]? = nil) throws -> LoopbackHTTP.Response {
    let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw POSIXError(.init(rawValue: errno) ?? .ECONNREFUSED) }
    var request = Data(
        ("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n").utf8)
    request.append(body)
    let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    guard sent == request.count else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 16384)
    let deadline = Date().addingTimeInterval(5)
    while Date() < deadline, data.count < 1 << 20 {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count == 0 { break }
        if count < 0 {
            if errno == EINTR { continue }
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        data += buffer.prefix(count)
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let statusLine = text.split(separator: "\r\n", maxSplits: 1).first,
        let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
        let headerEnd = text.range(of: "\r\n\r\n")
    else { throw POSIXError(.EBADMSG) }
    return LoopbackHTTP.Response(status: status, body: String(text[headerEnd.upperBound...]))
}

/// scripts/consumer.py as a real process on 127.0.0.1: stores events once by event_id and
/// misbehaves on request through its control port.
final class ConsumerProcess {
    let process = Process()
    let directory: URL
    let port: Int
    let controlPort: Int

    var eventsURL: String { "http://127.0.0.1:\(port)/events" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("consumer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("ports.json")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", TestPaths.packageRoot.appendingPathComponent("scripts/consumer.py").path,
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
        controlPort = control
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Sets a fault mode: {"mode": …} plus its parameters (scripts/consumer.py).
    func setMode(_ mode: [String: Any]) throws {
        let response = try loopbackRequest(port: controlPort, method: "POST", path: "/mode", json: mode)
        guard response.status == 200 else { throw POSIXError(.EPROTO) }
    }

    /// `GET /stats`: requests, by_status, unique_events, deliveries, duplicates, conflicts.
    func stats() throws -> [String: Any] {
        try loopbackRequest(port: controlPort, method: "GET", path: "/stats").json
    }
}

/// The agent's `GET /health` as JSON (200 or 503).
func agentHealth(port: Int) throws -> (ok: Bool, reasons: [String], object: [String: Any]) {
    let response = try LoopbackHTTP.get(port: port, path: "/health")
    let object = response.json
    return (object["status"] as? String == "ok", object["reasons"] as? [String] ?? [], object)
}
