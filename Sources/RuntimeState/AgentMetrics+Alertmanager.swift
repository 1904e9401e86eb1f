import Shipping

extension AgentMetrics {
    /// The Alertmanager notifier's families, written from its snapshot at each scrape as the
    /// instance series are. The notifier keeps its own counts from its start, which are exactly
    /// what a Prometheus counter is, so nothing is registered twice; every failure reason is
    /// listed from 0 so rates start at once. Absent when no Alertmanager is configured.
    static func appendAlertmanagerSeries(_ snapshot: AlertmanagerSnapshot, to buffer: inout [UInt8]) {
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            buffer.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n".utf8)
            for (labels, value) in samples {
                buffer.append(contentsOf: "\(name)\(labels) \(value)\n".utf8)
            }
        }
        family(
            "hostmeter_alertmanager_requests_total", "counter", "Requests made to Alertmanager.",
            [("", snapshot.requests)])
        family(
            "hostmeter_alertmanager_alerts_sent_total", "counter",
            "Alerts Alertmanager took (firing alerts sent again count each time).", [("", snapshot.alertsSent)])
        family(
            "hostmeter_alertmanager_alerts_rejected_total", "counter",
            "Alerts Alertmanager refused on their own (400, 413, 422); not sent again.", [("", snapshot.alertsRejected)])
        family(
            "hostmeter_alertmanager_send_failures_total", "counter", "Failed or refused requests to Alertmanager, by reason.",
            ShipFailureReason.allCases.map { (#"{reason=""# + $0.rawValue + #""}"#, snapshot.failures[$0, default: 0]) })
        family(
            "hostmeter_alertmanager_resolves_dropped_total", "counter",
            "Alert resolves dropped undelivered beyond the pending bound (Alertmanager ends them at their endsAt).",
            [("", snapshot.resolvesDropped)])
        family(
            "hostmeter_alertmanager_active_alerts", "gauge", "Firing alerts sent to Alertmanager again on each resend.",
            [("", snapshot.activeAlerts)])
        family(
            "hostmeter_alertmanager_pending_resolves", "gauge", "Alert resolves not yet delivered to Alertmanager.",
            [("", snapshot.pendingResolves)])
        family(
            "hostmeter_alertmanager_circuit_breaker_state", "gauge",
            "The Alertmanager notifier's circuit breaker: 0 closed, 1 open, 2 half-open.",
            [("", snapshot.breakerState.gaugeValue)])
    }
}
