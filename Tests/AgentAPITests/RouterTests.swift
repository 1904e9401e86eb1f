import AgentAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Metering
import NIOCore
import Outbox
import Shipping
import Testing
import UsageModel
import RuntimeState

/// A router over a hand-made snapshot: the host and three instances of two users.
struct RouterFixture {
    let state: AgentState
    let metrics = AgentMetrics()
    let shipper = ShipperStatus()
    let database: AgentDatabase
    let thresholds: ThresholdRuleBook
    let tokens: TokenStore
    var now: Double = 1_800_000_010

    static let adminToken = "admin-token-0123456789"
    static let aliceToken = "alice-token-0123456789"
    static let bobToken = "bob-token-0123456789"
    static let metricsToken = "metrics-token-0123456789"

    init(tokens: Bool, configurationRules: [ThresholdRule] = [], sampleAge: Double = 2) throws {
        database = try AgentDatabase.inMemory()
        thresholds = try ThresholdRuleBook(configuration: configurationRules, database: database)
        self.tokens = tokens
            ? TokenStore.hashing([
                Self.adminToken: .admin, Self.aliceToken: .user("alice"), Self.bobToken: .user("bob"),
                Self.metricsToken: .metrics,
            ]) : .open
        var snapshot = AgentSnapshot(
            hostID: "host-7", intervalSeconds: 30, sampleSeconds: 5, outboxMaxBytes: 1 << 30,
            startedAt: 1_800_000_000)
        snapshot.lastSample = SampleStatus(
            wallNanos: Int64((1_800_000_010 - sampleAge) * 1e9), durationNanos: 150_000, failures: [])
        snapshot.hostJSON = Array(#"{"boot_id":"b","memory":{"total_bytes":100}}"#.utf8)
        let period = UsageEvent(
            hostID: "host-7", instanceID: "vm-a1", userID: "alice", orgID: "org-1",
            period: Period(start: 1_800_000_000, end: 1_800_000_008),
            metrics: UsageMetrics(
                cpuSeconds: 3, cpuPercentAvg: 37.5, memoryGB: 1, memoryPercent: 50, storageGB: 2, networkEgressMB: 1,
                networkIngressMB: 2, gpuSeconds: 0),
            timestamp: 1_800_000_008)
        snapshot.instances = [
            InstanceView(
                instanceID: "host-7", userID: "operator", orgID: nil, isHost: true, running: true,
                gauges: InstanceGauges(cpuPercent: 12.5, memoryUsedBytes: 1000), periodSoFar: nil),
            InstanceView(
                instanceID: "vm-a1", userID: "alice", orgID: "org-1", isHost: false, running: true,
                gauges: InstanceGauges(cpuPercent: 37.5, memoryUsedBytes: 2000, periodCPUSeconds: 3.2),
                periodSoFar: period),
            InstanceView(
                instanceID: "vm-a2", userID: "alice", orgID: "org-1", isHost: false, running: false,
                gauges: InstanceGauges(), periodSoFar: nil),
            InstanceView(
                instanceID: "vm-b1", userID: "bob", orgID: "org-2", isHost: false, running: true,
                gauges: InstanceGauges(cpuPercent: 5), periodSoFar: nil),
        ]
        snapshot.outbox = OutboxStats(
            pendingEvents: 3, pendingBytes: 900, deadLetters: 1, attemptedEvents: 0, oldestPendingPeriodStart: 1_799_999_970,
            databaseBytes: 65536)
        state = AgentState(snapshot)
    }

    var application: some ApplicationProtocol {
        let now = self.now
        return Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: state, shipper: shipper, metrics: metrics), tokens: tokens, thresholds: thresholds,
                    logger: Logger(label: "test"), now: { now })))
    }
}

func json(_ response: TestResponse) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body))
    return try #require(object as? [String: Any], "not a JSON object: \(String(buffer: response.body))")
}

func errorMessage(_ response: TestResponse) throws -> String {
    let error = try #require(try json(response)["error"] as? [String: Any])
    #expect(error["status"] as? Int == Int(response.status.code))
    return try #require(error["message"] as? String)
}

func instanceIDs(_ response: TestResponse) throws -> [String] {
    try #require(try json(response)["instances"] as? [[String: Any]]).compactMap { $0["instance_id"] as? String }
}

func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

@Suite struct GetRouteTests {
    /// The head is encoded once per sample and reused: a new sample must show in the next request
    /// (its `sampled_at` and the age computed from it), not the head kept from the one before.
    @Test func theHeadFollowsEachSample() async throws {
        let fixture = try RouterFixture(tokens: false)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/get", method: .get) { (response: TestResponse) async throws in
                let body = try json(response)
                #expect(body["sample_age_seconds"] as? Double == 2)
                #expect(body["sampled_at"] as? Double == fixture.now - 2)
            }
            fixture.state.update { $0.lastSample?.wallNanos = Int64((fixture.now - 0.25) * 1e9) }
            try await client.execute(uri: "/get", method: .get) { (response: TestResponse) async throws in
                let body = try json(response)
                #expect(body["sample_age_seconds"] as? Double == 0.25)
                #expect(body["sampled_at"] as? Double == fixture.now - 0.25)
                #expect(body["host_id"] as? String == "host-7" && body["interval_seconds"] as? Int != nil)
            }
        }
    }

    @Test func servesTheSnapshotWithoutAuthentication() async throws {
        let fixture = try RouterFixture(tokens: false)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/get", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let body = try json(response)
                #expect(body["host_id"] as? String == "host-7")
                #expect(body["sample_age_seconds"] as? Double == 2)
                #expect((body["host"] as? [String: Any])?["boot_id"] as? String == "b")
                #expect(try instanceIDs(response) == ["host-7", "vm-a1", "vm-a2", "vm-b1"])
                let instances = try #require(body["instances"] as? [[String: Any]])
                let period = try #require(instances[1]["period_so_far"] as? [String: Any])
                #expect(period["seconds"] as? Int == 8)
                #expect((period["metrics"] as? [String: Any])?["cpu_seconds"] as? Int == 3)
                #expect(instances[2]["running"] as? Bool == false)
            }
        }
    }

    @Test func filtersByInstanceUserAndOrg() async throws {
        let fixture = try RouterFixture(tokens: false)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/get?instance_id=vm-b1", method: .get) { (response: TestResponse) async throws in
                #expect(try instanceIDs(response) == ["vm-b1"])
            }
            try await client.execute(uri: "/get?user_id=alice", method: .get) { (response: TestResponse) async throws in
                #expect(try instanceIDs(response) == ["vm-a1", "vm-a2"])
            }
            try await client.execute(uri: "/get?org_id=org-2", method: .get) { (response: TestResponse) async throws in
                #expect(try instanceIDs(response) == ["vm-b1"])
            }
            try await client.execute(uri: "/get?user_id=nobody", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .ok)
                #expect(try instanceIDs(response).isEmpty)
            }
            try await client.execute(uri: "/get?instance_id=vm-zz", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .notFound)
                #expect(try errorMessage(response) == "no instance \"vm-zz\"")
            }
            try await client.execute(uri: "/get?instance=vm-b1", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .badRequest)
                #expect(try errorMessage(response).contains("unknown query parameter \"instance\""))
            }
        }
    }

    @Test func tokensGateGetAndUsersSeeOnlyTheirOwn() async throws {
        let fixture = try RouterFixture(tokens: true)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/get", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"hostmeter\"")
                #expect(try errorMessage(response) == "a bearer token is required")
            }
            try await client.execute(uri: "/get", method: .get, headers: bearer("wrong")) { (response: TestResponse) async throws in
                #expect(response.status == .unauthorized)
                #expect(try errorMessage(response) == "the bearer token is not valid")
            }
            try await client.execute(uri: "/get", method: .get, headers: bearer(RouterFixture.adminToken)) { (response: TestResponse) async throws in
                #expect(try instanceIDs(response).count == 4)
                #expect(try json(response)["host"] is [String: Any])
            }
            try await client.execute(uri: "/get", method: .get, headers: bearer(RouterFixture.aliceToken)) { (response: TestResponse) async throws in
                #expect(response.status == .ok)
                #expect(try instanceIDs(response) == ["vm-a1", "vm-a2"])
                #expect(try json(response)["host"] is NSNull)
            }
            for uri in ["/get?instance_id=vm-b1", "/get?instance_id=host-7", "/get?user_id=bob"] {
                try await client.execute(uri: uri, method: .get, headers: bearer(RouterFixture.aliceToken)) { (response: TestResponse) async throws in
                    #expect(response.status == .notFound, "\(uri)")
                }
            }
            // Health and metrics show every user's figures: protected by default.
            try await client.execute(uri: "/health", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(RouterFixture.metricsToken)) {
                (response: TestResponse) async throws in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                // Two failed /get and one /health above; the alice token is not refused for /get.
                #expect(text.contains("hostmeter_api_auth_failures_total 3\n"), "\(text)")
            }
        }
    }
}

@Suite struct HealthAndMetricsRouteTests {
    @Test func healthIsOkWithFreshSamples() async throws {
        let fixture = try RouterFixture(tokens: false, sampleAge: 2)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["status"] as? String == "ok")
                #expect(body["circuit_breaker"] as? String == "closed")
                #expect((body["outbox"] as? [String: Any])?["pending_events"] as? Int == 3)
                #expect((body["outbox"] as? [String: Any])?["dead_letters"] as? Int == 1)
            }
        }
    }

    @Test func healthIsDegradedWithReasons() async throws {
        let fixture = try RouterFixture(tokens: false, sampleAge: 16)
        fixture.state.update {
            $0.outboxFull = true
            $0.storeError = "database is full"
        }
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .serviceUnavailable)
                let reasons = try #require(try json(response)["reasons"] as? [String])
                #expect(reasons.count == 2)
                #expect(reasons[0].hasPrefix("no sample for 16 s"))
                #expect(reasons[1].hasPrefix("outbox over its bound"))
            }
        }
        fixture.state.update {
            $0.outboxFull = false
            $0.storeError = "disk I/O error"
            $0.lastSample?.wallNanos = Int64(fixture.now * 1e9)
        }
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .serviceUnavailable)
                #expect(try json(response)["reasons"] as? [String] == ["database not writable: disk I/O error"])
                #expect(try json(response)["database_writable"] as? Bool == false)
            }
        }
    }

    @Test func metricsHaveHelpTypesAndInstanceSeries() async throws {
        let fixture = try RouterFixture(tokens: false)
        var text = try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
        }
        for name in [
            "hostmeter_sample_duration_seconds", "hostmeter_collector_errors_total", "hostmeter_periods_closed_total",
            "hostmeter_events_emitted_total", "hostmeter_outbox_pending_events", "hostmeter_outbox_dead_events",
            "hostmeter_outbox_bytes", "hostmeter_ship_attempts_total", "hostmeter_ship_failures_total",
            "hostmeter_ship_duration_seconds", "hostmeter_circuit_breaker_state", "hostmeter_instance_cpu_percent",
        ] {
            #expect(text.contains("# HELP \(name) "), "no HELP for \(name)")
            #expect(text.contains("# TYPE \(name) "), "no TYPE for \(name)")
        }
        #expect(text.contains("hostmeter_outbox_pending_events 3.0\n"))
        #expect(text.contains("hostmeter_instance_cpu_percent{instance_id=\"vm-a1\",user_id=\"alice\"} 37.5\n"))
        #expect(text.contains("hostmeter_instance_running{instance_id=\"vm-a2\",user_id=\"alice\"} 0.0\n"))

        // An instance that goes away takes its series with it.
        fixture.state.update { $0.instances.removeAll { $0.instanceID == "vm-b1" } }
        text = try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
        }
        #expect(!text.contains("vm-b1"))
        #expect(text.contains("vm-a1"))
    }

    @Test func healthAndMetricsNeedAnAdminOrMetricsTokenByDefault() async throws {
        let fixture = try RouterFixture(tokens: true)
        try await fixture.application.test(.router) { client in
            for uri in ["/metrics", "/health"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .unauthorized, "\(uri)") }
                // A user must not see other users' figures.
                try await client.execute(uri: uri, method: .get, headers: bearer(RouterFixture.aliceToken)) {
                    #expect($0.status == .forbidden, "\(uri)")
                }
                for token in [RouterFixture.metricsToken, RouterFixture.adminToken] {
                    try await client.execute(uri: uri, method: .get, headers: bearer(token)) {
                        #expect($0.status == .ok, "\(uri)")
                    }
                }
            }
            // The metrics role reads nothing else.
            for uri in ["/get", "/instances", "/thresholds", "/outbox"] {
                try await client.execute(uri: uri, method: .get, headers: bearer(RouterFixture.metricsToken)) {
                    #expect($0.status == .forbidden, "\(uri)")
                }
            }
        }
    }

    @Test func healthAndMetricsCanBeLeftOpen() async throws {
        let fixture = try RouterFixture(tokens: true)
        let app = Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: fixture.state, shipper: fixture.shipper, metrics: fixture.metrics), tokens: fixture.tokens,
                    thresholds: fixture.thresholds, protectHealthAndMetrics: false, logger: Logger(label: "test"))))
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/get", method: .get) { #expect($0.status == .unauthorized) }
        }
    }
}

@Suite struct ThresholdRouteTests {
    static let goodBody = #"""
        {"rules": [
          {"name": "cpu-high", "metric": "cpu_percent_avg", "op": ">", "value": 90, "for": 10, "clear": 80,
           "severity": "warning", "scope": "host", "labels": {"team": "infra"}},
          {"name": "mem", "metric": "memory_percent", "op": ">=", "value": 95, "severity": "critical"}
        ]}
        """#

    func put(_ client: some TestClientProtocol, _ body: String, token: String? = nil) async throws -> TestResponse {
        try await client.execute(
            uri: "/thresholds", method: .put,
            headers: token.map(bearer) ?? [:], body: ByteBuffer(string: body))
    }

    @Test func putValidatesStoresAndSurvivesARestart() async throws {
        let configured = try ThresholdRule(name: "from-file", metric: .loadPerCPU, op: .greater, value: 2)
        let fixture = try RouterFixture(tokens: true, configurationRules: [configured])
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/thresholds", method: .get, headers: bearer(RouterFixture.adminToken)) {
                (response: TestResponse) async throws in
                let body = try json(response)
                #expect(body["source"] as? String == "configuration")
                #expect((body["rules"] as? [[String: Any]])?.first?["name"] as? String == "from-file")
            }
            let response = try await put(client, Self.goodBody, token: RouterFixture.adminToken)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let body = try json(response)
            #expect(body["source"] as? String == "api")
            let rules = try #require(body["rules"] as? [[String: Any]])
            #expect(rules.map { $0["name"] as? String } == ["cpu-high", "mem"])
            #expect(rules[1]["for"] as? Int == 1)
            #expect(rules[1]["scope"] as? String == "host")
        }
        // A new agent on the same database has the API's rules, whatever the file says.
        let reopened = try ThresholdRuleBook(configuration: [configured], database: fixture.database)
        #expect(reopened.source == .api)
        #expect(reopened.effective.map(\.name) == ["cpu-high", "mem"])
        #expect(reopened.effective[0].clear == 80)
        #expect(reopened.effective[0].labels == ["team": "infra"])

        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/thresholds", method: .delete, headers: bearer(RouterFixture.adminToken)) {
                (response: TestResponse) async throws in
                #expect(response.status == .ok)
                #expect(try json(response)["source"] as? String == "configuration")
            }
        }
        #expect(try ThresholdRuleBook(configuration: [], database: fixture.database).source == .configuration)
    }

    @Test(arguments: [
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 90, "clear": 95}]}"#, "rules[0].clear"),
        (#"{"rules": [{"name": "x", "metric": "cpu_load", "op": ">", "value": 90}]}"#, "rules[0].metric: unknown metric \"cpu_load\""),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": "=>", "value": 90}]}"#, "rules[0].op"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": "high"}]}"#, "rules[0].value: must be a number"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">"}]}"#, "rules[0].value: is required"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 1, "for": 0}]}"#, "rules[0].for"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 1, "scope": "vm:1"}]}"#, "rules[0].scope"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 1, "severity": "page"}]}"#, "rules[0].severity"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 1, "labels": {"__x": "y"}}]}"#, "rules[0].labels.__x"),
        (#"{"rules": [{"name": "x", "metric": "cpu_percent_avg", "op": ">", "value": 1, "colour": "red"}]}"#, "rules[0].colour: unknown field"),
        (#"{"rules": [{"name": "x", "metric": "gpu_seconds", "op": "<", "value": 1}, {"name": "x", "metric": "gpu_seconds", "op": "<", "value": 2}]}"#, "rules[1].name: duplicate rule name"),
        (#"{"rules": {}}"#, "rules: must be an array"),
        (#"[]"#, "must be an object"),
        (#"{"rules": [}"#, "malformed JSON"),
        (#"{"ruls": []}"#, "ruls: unknown field"),
    ])
    func invalidRulesAreRefusedNamingTheField(body: String, message: String) async throws {
        let fixture = try RouterFixture(tokens: true)
        try await fixture.application.test(.router) { client in
            let response = try await put(client, body, token: RouterFixture.adminToken)
            #expect(response.status == .badRequest)
            let text = try errorMessage(response)
            #expect(text.contains(message), "\(text)")
        }
        #expect(fixture.thresholds.source == .configuration)
    }

    @Test func bodyLimitsAndRoles() async throws {
        let fixture = try RouterFixture(tokens: true)
        try await fixture.application.test(.router) { client in
            let huge = #"{"rules": [], "source": ""# + String(repeating: "x", count: 70 * 1024) + "\"}"
            let tooLarge = try await put(client, huge, token: RouterFixture.adminToken)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try errorMessage(tooLarge).contains("65536 bytes"))

            let forbidden = try await put(client, Self.goodBody, token: RouterFixture.aliceToken)
            #expect(forbidden.status == .forbidden)
            let anonymous = try await put(client, Self.goodBody)
            #expect(anonymous.status == .unauthorized)
            try await client.execute(uri: "/thresholds", method: .get, headers: bearer(RouterFixture.aliceToken)) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(
                uri: "/thresholds", method: .put,
                headers: [.authorization: "Bearer \(RouterFixture.adminToken)", .contentType: "text/plain"],
                body: ByteBuffer(string: Self.goodBody)
            ) { (response: TestResponse) async throws in
                #expect(response.status == .unsupportedMediaType)
            }
            let accepted = try await put(client, Self.goodBody, token: RouterFixture.adminToken)
            #expect(accepted.status == .ok)
        }
        #expect(fixture.thresholds.effective.count == 2)
    }

    @Test func withoutTokensNobodyMayChangeTheRules() async throws {
        let fixture = try RouterFixture(tokens: false)
        try await fixture.application.test(.router) { client in
            for token in [nil, RouterFixture.adminToken] {
                let response = try await put(client, Self.goodBody, token: token)
                #expect(response.status == .forbidden)
                #expect(try errorMessage(response).contains("api.tokens_file"))
                try await client.execute(uri: "/thresholds", method: .delete, headers: token.map(bearer) ?? [:]) {
                    #expect($0.status == .forbidden)
                }
            }
            // Reads stay open on the loopback.
            try await client.execute(uri: "/thresholds", method: .get) { #expect($0.status == .ok) }
        }
        #expect(fixture.thresholds.source == .configuration)
    }
}

@Suite struct OtherRouteTests {
    @Test func unknownRoutesAnswerJSON404() async throws {
        let fixture = try RouterFixture(tokens: true)
        try await fixture.application.test(.router) { client in
            for (uri, method) in [("/nope", HTTPRequest.Method.get), ("/get/extra", .get), ("/", .get)] {
                try await client.execute(uri: uri, method: method) { (response: TestResponse) async throws in
                    #expect(response.status == .notFound, "\(uri)")
                    #expect(try errorMessage(response) == "no route GET \(uri)")
                }
            }
        }
    }

    @Test func wrongMethodsAnswer405WithAllow() async throws {
        let fixture = try RouterFixture(tokens: false)
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/get", method: .post, body: ByteBuffer(string: "{}")) { (response: TestResponse) async throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD")
                #expect(try errorMessage(response).contains("POST is not allowed on /get"))
            }
            try await client.execute(uri: "/thresholds", method: .patch) { (response: TestResponse) async throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD, PUT, DELETE")
            }
        }
    }

    @Test func outboxShowsStatsAndShipper() async throws {
        let fixture = try RouterFixture(tokens: false)
        fixture.shipper.update {
            $0.requests = 7
            $0.eventsDelivered = 40
        }
        try await fixture.application.test(.router) { client in
            try await client.execute(uri: "/outbox", method: .get) { (response: TestResponse) async throws in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["pending_events"] as? Int == 3)
                #expect(body["dead_letters"] as? Int == 1)
                #expect(body["max_bytes"] as? Int == 1 << 30)
                #expect(body["requests"] as? Int == 7)
                #expect(body["events_delivered"] as? Int == 40)
                #expect(body["circuit_breaker"] as? String == "closed")
            }
        }
    }
}
