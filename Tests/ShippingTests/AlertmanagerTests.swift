import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TestSupport
import Testing
import UsageModel

@testable import Shipping

#if canImport(Glibc)
import Glibc
#endif

/// The Alertmanager notifier: what it sends (pure), and against a real Alertmanager (Debian's
/// `prometheus-alertmanager`) that each test starts on 127.0.0.1 with its own port, storage and a
/// null receiver. Every wait is bounded in count and time.
@Suite(.serialized) struct AlertmanagerTests {
    static var quietLogger: Logger {
        var logger = Logger(label: "test.alertmanager")
        logger.logLevel = .critical
        return logger
    }

    static func event(
        _ state: ThresholdEvent.State, rule: String, instance: String = "vm-42", labels: [String: String] = ["team": "ops"],
        period: Period, timestamp: Int64, org: String? = nil
    ) -> ThresholdEvent {
        ThresholdEvent(
            hostID: "host-7", instanceID: instance, userID: "u-9", orgID: org, state: state, rule: rule, severity: "critical",
            metric: "cpu_percent_avg", op: ">", value: state == .firing ? 95.5 : 79, threshold: state == .firing ? 90 : 80,
            labels: labels, period: period, timestamp: timestamp)
    }

    /// A period that closed just now, and now, in unix seconds.
    static func recentPeriod() -> (Period, Int64) {
        let now = Int64(Date().timeIntervalSince1970)
        return (Period(start: now - 30, end: now), now)
    }

    // MARK: What is sent

    @Test func labelsNameTheAlertAndOursWinOverTheRules() {
        let event = Self.event(
            .firing, rule: "cpu-high", labels: ["team": "ops", "severity": "low", "instance_id": "other"],
            period: Period(start: 100, end: 130), timestamp: 131, org: "org-1")
        #expect(
            AlertmanagerAlert.labels(of: event)
                == ["alertname": "cpu-high", "severity": "critical", "instance_id": "vm-42", "user_id": "u-9",
                    "host_id": "host-7", "org_id": "org-1", "team": "ops"])
        let withoutOrg = Self.event(.firing, rule: "cpu-high", labels: ["org_id": "x"], period: Period(start: 100, end: 130), timestamp: 131)
        #expect(AlertmanagerAlert.labels(of: withoutOrg)["org_id"] == nil, "a rule label must not invent an org")
    }

    @Test func annotationsSayMetricValueAndThreshold() {
        let firing = AlertmanagerAlert.annotations(
            of: Self.event(.firing, rule: "cpu-high", period: Period(start: 1_763_726_400, end: 1_763_726_430), timestamp: 0))
        #expect(firing["summary"] == "cpu-high: cpu_percent_avg > 90 on vm-42")
        #expect(firing["description"]?.contains("cpu_percent_avg was 95.5 (> 90) on instance vm-42") == true)
        #expect(firing["description"]?.contains("2025-11-21T12:00:00.000Z") == true, "\(firing["description"] ?? "")")
        #expect(firing["metric"] == "cpu_percent_avg" && firing["value"] == "95.5" && firing["threshold"] == "90")
        let resolved = AlertmanagerAlert.annotations(
            of: Self.event(.resolved, rule: "cpu-high", period: Period(start: 1_763_726_400, end: 1_763_726_430), timestamp: 0))
        #expect(resolved["summary"] == "cpu-high: resolved on vm-42")
        #expect(resolved["value"] == "79" && resolved["threshold"] == "80")
    }

    @Test func theBodyIsAlertmanagersPostableAlert() throws {
        let alert = AlertmanagerAlert(
            labels: ["alertname": "x"], annotations: ["summary": "s"], startsAt: Date(timeIntervalSince1970: 1_763_726_400),
            endsAt: Date(timeIntervalSince1970: 1_763_726_460.25), generatorURL: "http://127.0.0.1:9780/thresholds")
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode([alert])) as? [[String: Any]])
        #expect(Set(object[0].keys) == ["labels", "annotations", "startsAt", "endsAt", "generatorURL"])
        #expect(object[0]["startsAt"] as? String == "2025-11-21T12:00:00.000Z")
        #expect(object[0]["endsAt"] as? String == "2025-11-21T12:01:00.250Z")
        var bare = alert
        bare.generatorURL = nil
        let withoutURL = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(bare)) as? [String: Any])
        #expect(withoutURL["generatorURL"] == nil)
    }

    @Test(arguments: [(30.0, 30.0), (10, 10), (60, 60), (300, 60), (3600, 60), (0.5, 1)])
    func resendCadenceIsAPeriodAtMostAMinute(interval: Double, expected: Double) {
        let settings = AlertmanagerSettings(url: "http://127.0.0.1:9093/", intervalSeconds: interval)
        #expect(settings.resendSeconds == expected)
        #expect(settings.validitySeconds == 4 * expected)
        #expect(settings.alertsURL == "http://127.0.0.1:9093/api/v2/alerts")
    }

    @Test func activeAlertsResendAndResolvesEndAtTheResolve() async throws {
        let clock = ManualClock(1_763_726_500)
        let notifier = AlertmanagerNotifier(
            settings: AlertmanagerSettings(url: "http://127.0.0.1:9", intervalSeconds: 30), logger: Self.quietLogger,
            now: { clock.now })
        let period = Period(start: 1_763_726_400, end: 1_763_726_430)
        notifier.apply([Self.event(.firing, rule: "a", period: period, timestamp: 1_763_726_431)])
        var pending = notifier.pendingAlerts()
        #expect(pending.count == 1)
        #expect(pending.first?.startsAt == Date(timeIntervalSince1970: 1_763_726_400))
        #expect(pending.first?.endsAt == Date(timeIntervalSince1970: 1_763_726_500 + 120))
        clock.now += 30
        #expect(notifier.pendingAlerts().first?.endsAt == Date(timeIntervalSince1970: 1_763_726_530 + 120))

        // Resolved with other labels (the rule was edited): it still ends the alert that was sent.
        let later = Period(start: 1_763_726_460, end: 1_763_726_490)
        notifier.apply([Self.event(.resolved, rule: "a", labels: ["team": "db"], period: later, timestamp: 1_763_726_491)])
        pending = notifier.pendingAlerts()
        #expect(pending.count == 1)
        #expect(pending.first?.labels["team"] == "ops")
        #expect(pending.first?.endsAt == Date(timeIntervalSince1970: 1_763_726_491))
        #expect(pending.first?.annotations["summary"] == "a: resolved on vm-42")
        let snapshot = notifier.snapshot
        #expect(snapshot.activeAlerts == 0 && snapshot.pendingResolves == 1)

        // Firing again before the resolve went out: the resolve is dropped, the alert is active.
        notifier.apply([Self.event(.firing, rule: "a", period: Period(start: 1_763_726_490, end: 1_763_726_520), timestamp: 1_763_726_521)])
        pending = notifier.pendingAlerts()
        #expect(pending.count == 1 && pending.first!.endsAt > Date(timeIntervalSince1970: clock.now))
        await notifier.shutdown()
    }

    @Test func aRestartedNotifierKnowsItsActiveAlerts() async throws {
        let period = Period(start: 1_763_726_400, end: 1_763_726_430)
        let notifier = AlertmanagerNotifier(
            settings: AlertmanagerSettings(url: "http://127.0.0.1:9"), logger: Self.quietLogger,
            active: [
                Self.event(.firing, rule: "a", period: period, timestamp: 1),
                Self.event(.firing, rule: "b", instance: "vm-1", period: period, timestamp: 1),
                // Not firing: ignored.
                Self.event(.resolved, rule: "c", period: period, timestamp: 1),
            ])
        #expect(notifier.pendingAlerts().map { $0.labels["alertname"] } == ["a", "b"])
        #expect(notifier.snapshot.activeAlerts == 2)
        await notifier.shutdown()
    }

    // MARK: A real Alertmanager

    @Test(.enabled(if: AlertmanagerProcess.isInstalled, AlertmanagerProcess.missing))
    func aFiringAlertShowsUpAndEndsAfterTheResolve() async throws {
        let alertmanager = try #require(try await AlertmanagerProcess.startOnFreePort(), "Alertmanager did not get ready on 127.0.0.1")
        defer { alertmanager.stop() }

        // Resend every second with endsAt a minute ahead: a resend moves endsAt on, and an alert
        // gone within seconds of the resolve was ended by it, not by expiry.
        let settings = AlertmanagerSettings(
            url: alertmanager.url, resendSeconds: 1, validitySeconds: 60, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.5),
            generatorURL: "http://127.0.0.1:9780/thresholds")
        let notifier = AlertmanagerNotifier(settings: settings, logger: Self.quietLogger)
        let running = Task { try await notifier.run() }
        defer { running.cancel() }

        let rule = "cpu-high-\(UUID().uuidString.prefix(8))"
        let (period, now) = Self.recentPeriod()
        notifier.apply([Self.event(.firing, rule: rule, period: period, timestamp: now, org: "org-1")])

        let alert = try #require(
            try await alertmanager.waitForAlert(named: rule, seconds: 10) { _ in true }, "the firing alert never showed up")
        let labels = try #require(alert["labels"] as? [String: String])
        #expect(
            labels == ["alertname": rule, "severity": "critical", "instance_id": "vm-42", "user_id": "u-9", "host_id": "host-7",
                       "org_id": "org-1", "team": "ops"])
        let annotations = try #require(alert["annotations"] as? [String: String])
        #expect(annotations["summary"] == "\(rule): cpu_percent_avg > 90 on vm-42")
        #expect(annotations["value"] == "95.5" && annotations["threshold"] == "90")
        #expect((alert["status"] as? [String: Any])?["state"] as? String == "active")
        #expect(alert["generatorURL"] as? String == "http://127.0.0.1:9780/thresholds")
        let startsAt = try #require(AlertmanagerProcess.date(alert["startsAt"]))
        #expect(startsAt == Date(timeIntervalSince1970: Double(period.start)))
        let firstEnd = try #require(AlertmanagerProcess.date(alert["endsAt"]))
        #expect(firstEnd > Date().addingTimeInterval(30), "a firing alert must end well in the future")

        // Resent while firing: endsAt moves on.
        let resent = try await alertmanager.waitForAlert(named: rule, seconds: 10) { alert in
            (AlertmanagerProcess.date(alert["endsAt"]).map { $0 > firstEnd }) ?? false
        }
        #expect(resent != nil, "the firing alert was not sent again")

        // Resolve: the alert ends, long before its endsAt of a minute ahead would have ended it.
        let resolvedAt = Int64(Date().timeIntervalSince1970)
        notifier.apply([
            Self.event(.resolved, rule: rule, period: Period(start: period.end, end: period.end + 30), timestamp: resolvedAt, org: "org-1")
        ])
        let gone = try await alertmanager.waitUntilGone(named: rule, seconds: 15)
        #expect(gone, "the alert is still active after the resolve")
        #expect(Date() < firstEnd, "too slow to tell a resolve from an expiry")

        // Alertmanager may answer the test's GET before the notifier has read its answer to the POST.
        var snapshot = notifier.snapshot
        for _ in 0..<50 {
            if snapshot.pendingResolves == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
            snapshot = notifier.snapshot
        }
        #expect(snapshot.failures.isEmpty, "\(snapshot.failures)")
        #expect(snapshot.activeAlerts == 0 && snapshot.pendingResolves == 0)
        #expect(snapshot.requests >= 3)
        running.cancel()
        _ = try? await running.value
    }

    @Test(.enabled(if: AlertmanagerProcess.isInstalled, AlertmanagerProcess.missing))
    func alertsWaitOutAnOutageThroughRetryAndTheBreaker() async throws {
        // Nothing listens on the port yet.
        let port = try AlertmanagerProcess.freePort()
        let settings = AlertmanagerSettings(
            url: "http://127.0.0.1:\(port)", resendSeconds: 1, validitySeconds: 60,
            retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.3), failureThreshold: 2, openSeconds: 0.3,
            connectTimeoutSeconds: 0.5, requestTimeoutSeconds: 1)
        let notifier = AlertmanagerNotifier(settings: settings, logger: Self.quietLogger)
        let running = Task { try await notifier.run() }
        defer { running.cancel() }

        let rule = "outage-\(UUID().uuidString.prefix(8))"
        let (period, now) = Self.recentPeriod()
        notifier.apply([Self.event(.firing, rule: rule, period: period, timestamp: now)])

        // Failures, then the breaker opens.
        var snapshot = notifier.snapshot
        for _ in 0..<200 {
            if snapshot.breakerState != .closed, !snapshot.failures.isEmpty { break }
            try await Task.sleep(for: .milliseconds(50))
            snapshot = notifier.snapshot
        }
        #expect(!snapshot.failures.isEmpty, "no failure recorded while Alertmanager was down")
        #expect(snapshot.breakerState != .closed, "the breaker did not open")

        guard let alertmanager = try await AlertmanagerProcess.start(port: port) else {
            Issue.record("Alertmanager did not start on port \(port)")
            return
        }
        defer { alertmanager.stop() }
        let alert = try await alertmanager.waitForAlert(named: rule, seconds: 15) { _ in true }
        #expect(alert != nil, "the alert did not arrive after the outage")
        snapshot = notifier.snapshot
        for _ in 0..<50 {
            if snapshot.breakerState == .closed { break }
            try await Task.sleep(for: .milliseconds(50))
            snapshot = notifier.snapshot
        }
        #expect(snapshot.breakerState == .closed)
        running.cancel()
        _ = try? await running.value
    }

    /// An endpoint that refuses the request (a wrong URL, a proxy wanting credentials) is a failure,
    /// as for the sinks: retried with backoff and counted in the breaker, which opens; the alert is
    /// kept. Here the loopback consumer answers 404 to Alertmanager's path.
    @Test func aRefusingEndpointIsRetriedAndOpensTheBreaker() async throws {
        let consumer = try LoopbackConsumer()
        let settings = AlertmanagerSettings(
            url: "http://127.0.0.1:\(consumer.port)", resendSeconds: 30, validitySeconds: 120,
            retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.2), failureThreshold: 2, openSeconds: 30,
            connectTimeoutSeconds: 1, requestTimeoutSeconds: 2)
        let notifier = AlertmanagerNotifier(settings: settings, logger: Self.quietLogger)
        let (period, now) = Self.recentPeriod()
        notifier.apply([Self.event(.firing, rule: "refused", period: period, timestamp: now)])
        let running = Task { try await notifier.run() }
        defer { running.cancel() }

        var snapshot = notifier.snapshot
        for _ in 0..<100 {
            if snapshot.breakerState != .closed { break }
            try await Task.sleep(for: .milliseconds(50))
            snapshot = notifier.snapshot
        }
        running.cancel()
        _ = try? await running.value
        #expect(snapshot.breakerState.gaugeValue == 1, "the breaker did not open: \(snapshot)")
        #expect(snapshot.failures.first { $0.key.rawValue == "http_404" }?.value == 2, "\(snapshot.failures)")
        #expect(snapshot.alertsRejected == 0)
        let requests = try await consumer.stats()
        #expect(requests.requests == 2 && requests.by_status["404"] == 2, "\(requests.by_status)")
        #expect(notifier.pendingAlerts().count == 1)
    }
}

/// A clock the test moves.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double
    init(_ value: Double) { self.value = value }
    var now: Double {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// A real Alertmanager on 127.0.0.1: its own port, storage and config (one null receiver), no
/// cluster listener.
final class AlertmanagerProcess: @unchecked Sendable {
    static let binary = "/usr/bin/prometheus-alertmanager"

    let process: Process
    let directory: URL
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }

    private init(process: Process, directory: URL, port: Int) {
        self.process = process
        self.directory = directory
        self.port = port
    }

    static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    static let missing = Comment(rawValue: "\(binary) is missing: install prometheus-alertmanager (scripts/deps.sh --test)")

    /// Starts one on a free port; nil if it never gets ready.
    static func startOnFreePort() async throws -> AlertmanagerProcess? {
        // Another process may take the free port between the check and the bind: try a few.
        for _ in 0..<3 {
            if let started = try await start(port: try freePort()) { return started }
        }
        return nil
    }

    /// Starts one on `port` and waits for /-/ready (at most 20 s); nil if it exits or never gets ready.
    static func start(port: Int) async throws -> AlertmanagerProcess? {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alertmanager-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("alertmanager.yml")
        try Data(
            """
            route:
              receiver: "null"
              group_wait: 1s
              group_interval: 1s
            receivers:
              - name: "null"

            """.utf8
        ).write(to: config)
        let log = directory.appendingPathComponent("alertmanager.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: log)
        defer { try? logHandle.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--config.file=\(config.path)", "--storage.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=", "--log.level=warn",
        ]
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let started = AlertmanagerProcess(process: process, directory: directory, port: port)

        let deadline = Date().addingTimeInterval(20)
        for _ in 0..<200 {
            guard process.isRunning, Date() < deadline else { break }
            if let (status, _) = try? await started.get("/-/ready"), status == 200 { return started }
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        print("alertmanager on port \(port) did not get ready: \(output.suffix(2000))")
        started.stop()
        return nil
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    func get(_ path: String) async throws -> (Int, Data) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + path), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), Data(body.readableBytesView))
    }

    /// The alerts Alertmanager holds as not ended (GET /api/v2/alerts leaves out alerts whose
    /// endsAt has passed), named `name`.
    func alerts(named name: String) async throws -> [[String: Any]] {
        let filter = "alertname=\"\(name)\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let (status, data) = try await get("/api/v2/alerts?active=true&silenced=true&inhibited=true&filter=\(filter)")
        guard status == 200 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "GET /api/v2/alerts: \(status)"])
        }
        return try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
    }

    /// The first alert named `name` that satisfies `accept`, polled every 100 ms for at most `seconds`.
    func waitForAlert(named name: String, seconds: Double, accept: ([String: Any]) -> Bool) async throws -> [String: Any]? {
        let deadline = Date().addingTimeInterval(seconds)
        for _ in 0..<Int(seconds * 10) {
            if let alert = try await alerts(named: name).first(where: accept) { return alert }
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// Whether no alert named `name` is left, polled every 100 ms for at most `seconds`.
    func waitUntilGone(named name: String, seconds: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        for _ in 0..<Int(seconds * 10) {
            if try await alerts(named: name).isEmpty { return true }
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    static func date(_ value: Any?) -> Date? {
        guard let text = value as? String else { return nil }
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    static func freePort() throws -> Int {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var actual = sockaddr_in()
        var actualLength = length
        let named = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &actualLength) }
        }
        guard named == 0 else { throw POSIXError(.EINVAL) }
        return Int(UInt16(bigEndian: actual.sin_port))
    }
}
