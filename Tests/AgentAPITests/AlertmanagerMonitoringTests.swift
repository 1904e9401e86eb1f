import AgentAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import RuntimeState
import Shipping
import Testing
import UsageModel

/// The Alertmanager notifier's counts and breaker in /metrics, and its endpoint's refusal in
/// /health, next to the shipper's.
@Suite struct AlertmanagerMonitoringTests {
    @Test func theNotifiersFamiliesAreInTheExpositionAndPassPromtool() async throws {
        let fixture = try RouterFixture(tokens: false)
        var snapshot = AlertmanagerSnapshot()
        snapshot.activeAlerts = 2
        snapshot.pendingResolves = 1
        snapshot.resolvesDropped = 3
        snapshot.delivery.requests = 7
        snapshot.delivery.delivered = 12
        snapshot.delivery.refused = 1
        snapshot.delivery.failures = [.http404: 4]
        snapshot.delivery.breakerState = .open(until: 5)
        let state = fixture.state.snapshot
        let health = AgentHealth(snapshot: state, shipper: ShipperSnapshot(), now: fixture.now)
        let text = String(
            decoding: fixture.metrics.exposition(snapshot: state, shipper: ShipperSnapshot(), health: health, alertmanager: snapshot),
            as: UTF8.self)
        for line in [
            "hostmeter_alertmanager_requests_total 7", "hostmeter_alertmanager_alerts_sent_total 12",
            "hostmeter_alertmanager_alerts_rejected_total 1", #"hostmeter_alertmanager_send_failures_total{reason="http_404"} 4"#,
            #"hostmeter_alertmanager_send_failures_total{reason="connect"} 0"#,
            "hostmeter_alertmanager_resolves_dropped_total 3", "hostmeter_alertmanager_active_alerts 2",
            "hostmeter_alertmanager_pending_resolves 1", "hostmeter_alertmanager_circuit_breaker_state 1",
        ] {
            #expect(text.contains("\n\(line)\n"), "no line \(line)")
        }
        let without = String(
            decoding: fixture.metrics.exposition(snapshot: state, shipper: ShipperSnapshot(), health: health), as: UTF8.self)
        #expect(!without.contains("hostmeter_alertmanager_"), "families without a notifier")

        if await toolExists("promtool") {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).txt")
            defer { try? FileManager.default.removeItem(at: file) }
            try text.write(to: file, atomically: true, encoding: .utf8)
            let check = try await runTool(["sh", "-c", "promtool check metrics < '\(file.path)'"], timeout: 30)
            #expect(check.status == 0, "promtool check metrics: \(check.output)")
        } else {
            Issue.record("promtool is not installed (Debian package prometheus; scripts/deps.sh --test installs it)")
        }
    }

    /// /metrics reads the notifier the API was given.
    @Test func metricsShowTheNotifiersActiveAlerts() async throws {
        let fixture = try RouterFixture(tokens: false)
        let notifier = AlertmanagerNotifier(settings: AlertmanagerSettings(url: "http://127.0.0.1:9"), logger: Logger(label: "test"))
        notifier.apply([
            ThresholdEvent(
                hostID: "host-7", instanceID: "vm-a1", userID: "alice", orgID: nil, state: .firing, rule: "cpu-high",
                severity: "warning", metric: "cpu_percent_avg", op: ">", value: 95, threshold: 90,
                period: Period(start: 1_800_000_000, end: 1_800_000_030), timestamp: 1_800_000_031)
        ])
        let now = fixture.now
        let application = Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(
                        state: fixture.state, shipper: fixture.shipper, alertmanager: notifier, metrics: fixture.metrics),
                    tokens: fixture.tokens, thresholds: fixture.thresholds, logger: Logger(label: "test"), now: { now })))
        let text = try await application.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
        }
        #expect(text.contains("\nhostmeter_alertmanager_active_alerts 1\n"))
        #expect(text.contains("\nhostmeter_alertmanager_circuit_breaker_state 0\n"))
        await notifier.shutdown()
    }

    /// An Alertmanager that refuses the agent's requests (a wrong URL, a proxy wanting credentials)
    /// will not pass by itself: /health says so, as for the sink.
    @Test func aRefusingAlertmanagerDegradesHealth() throws {
        let fixture = try RouterFixture(tokens: false)
        var snapshot = AlertmanagerSnapshot()
        let state = fixture.state.snapshot
        #expect(AgentHealth(snapshot: state, shipper: ShipperSnapshot(), alertmanager: snapshot, now: fixture.now).ok)
        snapshot.delivery.endpointRefusal = "HTTP 404: not found"
        let health = AgentHealth(snapshot: state, shipper: ShipperSnapshot(), alertmanager: snapshot, now: fixture.now)
        #expect(!health.ok)
        #expect(health.reasons.contains { $0.contains("alertmanager refuses") && $0.contains("HTTP 404") }, "\(health.reasons)")
    }
}
