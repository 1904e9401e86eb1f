import AgentAPI
import ArgumentParser
import Foundation
import Logging
import Metering
import Outbox
import Probes
import RuntimeState
import Shipping

#if canImport(Glibc)
import Glibc
#endif

/// `--count` instances registered with `PUT /instances/{id}` over loopback HTTP against the real
/// API server and a real SQLite file, then `GET /instances` and `/metrics` with all of them in the
/// snapshot: what issue 16 found quadratic (8,000 PUTs, then a 16 s scrape).
struct InstanceAPIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instances-api",
        abstract: "Registering N instances over the API, then GET /instances and a /metrics scrape with all of them.",
        discussion: """
            The agent's own APIServer on 127.0.0.1 (a free port) with a database in a temporary \
            directory (synchronous FULL, WAL, as a state_dir). Each PUT is its own connection. The \
            snapshot the sampler would publish is filled with one running instance per registration, \
            so /metrics has 8 series per instance. Prints per-PUT latencies for the first and last \
            tenth of the registrations (equal when registration is linear), the time of each GET, \
            the body sizes and RssAnon per instance.
            """)

    @Option(help: "Instances to register (and max_instances).")
    var count = 4000

    @Option(help: "GETs of each kind, after one warm-up.")
    var repetitions = 5

    @Flag(help: "Print the figures as JSON instead of lines.")
    var json = false

    struct Report: Encodable {
        let benchmark = "instances_api"
        var count: Int
        var registerSeconds: Double
        var putFirstTenth: Distribution
        var putLastTenth: Distribution
        var listInstances: Distribution
        var listInstancesBytes: Int
        var firstScrape: Distribution
        var scrape: Distribution
        var scrapeBytes: Int
        var refusedPastTheLimit: Int
        var rssAnonBytesPerInstance: Double

        enum CodingKeys: String, CodingKey {
            case benchmark, count
            case registerSeconds = "register_s", putFirstTenth = "put_first_tenth", putLastTenth = "put_last_tenth"
            case listInstances = "get_instances", listInstancesBytes = "get_instances_bytes"
            case firstScrape = "first_scrape", scrape, scrapeBytes = "scrape_bytes"
            case refusedPastTheLimit = "put_past_limit_status", rssAnonBytesPerInstance = "rss_anon_bytes_per_instance"
        }
    }

    func validate() throws {
        guard (10...65_536).contains(count) else { throw ValidationError("--count must be between 10 and 65536") }
        guard (1...1000).contains(repetitions) else { throw ValidationError("--repetitions must be between 1 and 1000") }
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostmeter-bench-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try AgentDatabase.open(path: directory.appendingPathComponent("hostmeter.sqlite").path)
        let registry = try InstanceRegistry(database: database, reserved: ["bench-host"], limit: count)
        let state = AgentState(
            AgentSnapshot(hostID: "bench-host", intervalSeconds: 30, sampleSeconds: 5, outboxMaxBytes: 1 << 30, startedAt: 0))
        var logger = Logger(label: "hostmeter-bench")
        logger.logLevel = .warning
        let boundPort = APIServer.BoundPort()
        let server = try APIServer(
            listen: "127.0.0.1:0",
            dependencies: APIDependencies(
                status: AgentStatus(state: state, shipper: ShipperStatus(), metrics: AgentMetrics()),
                tokens: TokenStore.hashing([BenchHTTP.adminToken: .admin]),
                thresholds: try ThresholdRuleBook(configuration: [], database: database), instances: registry, logger: logger),
            boundPort: boundPort)
        let serving = Task { try await server.run() }
        defer { serving.cancel() }
        guard let port = await boundPort.wait() else { throw BenchFailure("the API server did not start") }

        let before = try InstanceBench.MemoryStatus.current()
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        var views: [InstanceView] = []
        views.reserveCapacity(count)
        let started = HostClock.monotonicNanos()
        for index in 0..<count {
            let id = String(format: "vm-%05d", index)
            let body = #"{"user_id": "user-\#(index % 97)", "cgroup": "machine.slice/\#(id).scope", "interfaces": ["tap\#(index)"], "vcpus": 2}"#
            let put = HostClock.monotonicNanos()
            let response = try BenchHTTP.request(port: port, method: "PUT", path: "/instances/\(id)", body: body)
            latencies.append(HostClock.monotonicNanos() - put)
            guard response.status == 201 else { throw BenchFailure("PUT \(id) answered \(response.status): \(response.body)") }
            views.append(
                InstanceView(
                    instanceID: id, userID: "user-\(index % 97)", orgID: nil, isHost: false, running: true,
                    gauges: InstanceGauges(cpuPercent: 12.5, memoryUsedBytes: 1 << 30, storageUsedBytes: 10 << 30),
                    periodSoFar: nil))
        }
        let registerSeconds = Double(HostClock.monotonicNanos() - started) / 1e9
        let pastTheLimit = try BenchHTTP.request(
            port: port, method: "PUT", path: "/instances/one-too-many", body: #"{"user_id": "u", "cgroup": "c"}"#)
        state.update { $0.instances = views }

        func timed(_ path: String, times: Int) throws -> (Distribution, Int) {
            var nanoseconds: [UInt64] = []
            var bytes = 0
            for _ in 0..<times {
                let start = HostClock.monotonicNanos()
                let response = try BenchHTTP.request(port: port, method: "GET", path: path, body: nil)
                nanoseconds.append(HostClock.monotonicNanos() - start)
                guard response.status == 200 else { throw BenchFailure("GET \(path) answered \(response.status)") }
                bytes = response.body.utf8.count
            }
            return (Distribution(nanoseconds: nanoseconds), bytes)
        }
        let (firstScrape, _) = try timed("/metrics", times: 1)
        let (scrape, scrapeBytes) = try timed("/metrics", times: repetitions)
        _ = try timed("/instances", times: 1)
        let (list, listBytes) = try timed("/instances", times: repetitions)
        let after = try InstanceBench.MemoryStatus.current()

        let tenth = max(1, count / 10)
        let report = Report(
            count: count, registerSeconds: registerSeconds,
            putFirstTenth: Distribution(nanoseconds: Array(latencies.prefix(tenth))),
            putLastTenth: Distribution(nanoseconds: Array(latencies.suffix(tenth))), listInstances: list,
            listInstancesBytes: listBytes, firstScrape: firstScrape, scrape: scrape, scrapeBytes: scrapeBytes,
            refusedPastTheLimit: pastTheLimit.status,
            rssAnonBytesPerInstance: Double(after.rssAnonKilobytes - before.rssAnonKilobytes) * 1024 / Double(count))
        if json {
            try printJSON(report)
        } else {
            func ms(_ distribution: Distribution) -> String {
                String(format: "median %.2f ms, p99 %.2f ms", distribution.medianMicroseconds / 1000, distribution.p99Microseconds / 1000)
            }
            print(String(format: "%d instances registered with PUT in %.1f s", count, registerSeconds))
            print("PUT, first tenth: \(ms(report.putFirstTenth)); last tenth: \(ms(report.putLastTenth))")
            print("PUT past max_instances: \(pastTheLimit.status)")
            print("GET /instances (\(listBytes) bytes): \(ms(list))")
            print("GET /metrics (\(scrapeBytes) bytes): first \(ms(firstScrape)); then \(ms(scrape))")
            print(String(format: "RssAnon: %.0f bytes per instance (%d kB before, %d kB after)",
                         report.rssAnonBytesPerInstance, before.rssAnonKilobytes, after.rssAnonKilobytes))
        }
    }
}

/// One HTTP/1.1 request as admin over a loopback connection of its own (`Connection: close`), read to the
/// end: enough for a benchmark, with 120 s socket timeouts so nothing waits forever.
enum BenchHTTP {
    /// The bench's server knows this one token, as admin (changes need one).
    static let adminToken = "hostmeter-bench-admin-token"

    struct Response {
        var status: Int
        var body: String
    }

    static func request(port: Int, method: String, path: String, body: String?) throws -> Response {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw BenchFailure("socket: errno \(errno)") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
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
        guard connected == 0 else { throw BenchFailure("connect to 127.0.0.1:\(port): errno \(errno)") }
        var head =
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(adminToken)\r\nConnection: close\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        let request = Array((head + "\r\n" + (body ?? "")).utf8)
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw BenchFailure("send: errno \(errno)") }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else { throw BenchFailure("recv: errno \(errno)") }
            received.append(contentsOf: buffer[..<count])
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n", maxSplits: 1).first,
            let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
        else { throw BenchFailure("no HTTP status line in \(text.prefix(100))") }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return Response(status: status, body: body)
    }
}
