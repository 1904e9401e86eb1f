import AgentAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Metering
import NIOCore
import Synchronization
import Testing
import RuntimeState
import UsageModel

/// Every route × method × path variant × caller, with the status each must answer. The rows are
/// written here, by hand, not derived from the route table: a route added to `APIRouter.routes`
/// without its row fails `everyRouteHasItsRow`.
@Suite struct AuthorizationMatrixTests {
    enum Caller: String, CaseIterable, CustomStringConvertible {
        case noToken, unknownToken, userA, userB, admin, metrics

        var token: String? {
            switch self {
            case .noToken: nil
            case .unknownToken: "not-a-token-of-this-agent"
            case .userA: RouterFixture.aliceToken
            case .userB: RouterFixture.bobToken
            case .admin: RouterFixture.adminToken
            case .metrics: RouterFixture.metricsToken
            }
        }

        var description: String { rawValue }
    }

    /// How the agent is configured.
    enum Mode: CaseIterable {
        /// A tokens file, /health and /metrics protected: the defaults with tokens.
        case tokens
        /// A tokens file, `api.auth_health_and_metrics: false`.
        case tokensOpenMonitoring
        /// No tokens file.
        case noTokens
    }

    /// One route as the tests call it: a concrete path for the route's pattern, and a valid body.
    struct Call {
        var method: HTTPRequest.Method
        var path: String
        var body: String?
    }

    static let rulesBody = #"{"rules": [{"name": "mem", "metric": "memory_percent", "op": ">=", "value": 95}]}"#
    static let manifestBody = #"{"user_id": "alice", "org_id": "org-1", "cgroup": "machine.slice/vm-a1.scope"}"#

    /// The calls, keyed as "METHOD /pattern". `vm-a1` is user A's (alice's) instance.
    static let calls: [String: Call] = [
        "GET /get": Call(method: .get, path: "/get"),
        "GET /health": Call(method: .get, path: "/health"),
        "GET /metrics": Call(method: .get, path: "/metrics"),
        "GET /thresholds": Call(method: .get, path: "/thresholds"),
        "PUT /thresholds": Call(method: .put, path: "/thresholds", body: rulesBody),
        "DELETE /thresholds": Call(method: .delete, path: "/thresholds"),
        "GET /outbox": Call(method: .get, path: "/outbox"),
        "GET /identity": Call(method: .get, path: "/identity"),
        "GET /instances": Call(method: .get, path: "/instances"),
        "GET /instances/:id": Call(method: .get, path: "/instances/vm-a1"),
        "PUT /instances/:id": Call(method: .put, path: "/instances/vm-a1", body: manifestBody),
        "DELETE /instances/:id": Call(method: .delete, path: "/instances/vm-a1"),
    ]

    /// The status of each call for each caller with tokens and protected monitoring, in the order
    /// noToken, unknownToken, userA, userB, admin, metrics.
    static let withTokens: [String: [Int]] = [
        "GET /get": [401, 401, 200, 200, 200, 403],
        "GET /health": [401, 401, 403, 403, 200, 200],
        "GET /metrics": [401, 401, 403, 403, 200, 200],
        "GET /thresholds": [401, 401, 403, 403, 200, 403],
        "PUT /thresholds": [401, 401, 403, 403, 200, 403],
        "DELETE /thresholds": [401, 401, 403, 403, 200, 403],
        "GET /outbox": [401, 401, 403, 403, 200, 403],
        // A public key: every user may check the signatures over their usage.
        "GET /identity": [401, 401, 200, 200, 200, 403],
        "GET /instances": [401, 401, 200, 200, 200, 403],
        // User B is told there is no such instance, as for one that does not exist.
        "GET /instances/:id": [401, 401, 200, 404, 200, 403],
        "PUT /instances/:id": [401, 401, 403, 403, 200, 403],
        "DELETE /instances/:id": [401, 401, 403, 403, 204, 403],
    ]

    /// The same with `api.auth_health_and_metrics: false`: only /health and /metrics differ.
    static let withTokensOpenMonitoring: [String: [Int]] = withTokens.merging([
        "GET /health": [200, 200, 200, 200, 200, 200],
        "GET /metrics": [200, 200, 200, 200, 200, 200],
    ]) { $1 }

    /// Without tokens: reads open to everyone, every change refused, whatever token is sent.
    static let withoutTokens: [String: [Int]] = [
        "GET /get": [200, 200, 200, 200, 200, 200],
        "GET /health": [200, 200, 200, 200, 200, 200],
        "GET /metrics": [200, 200, 200, 200, 200, 200],
        "GET /thresholds": [200, 200, 200, 200, 200, 200],
        "PUT /thresholds": [403, 403, 403, 403, 403, 403],
        "DELETE /thresholds": [403, 403, 403, 403, 403, 403],
        "GET /outbox": [200, 200, 200, 200, 200, 200],
        "GET /identity": [200, 200, 200, 200, 200, 200],
        "GET /instances": [200, 200, 200, 200, 200, 200],
        "GET /instances/:id": [200, 200, 200, 200, 200, 200],
        "PUT /instances/:id": [403, 403, 403, 403, 403, 403],
        "DELETE /instances/:id": [403, 403, 403, 403, 403, 403],
    ]

    static func expected(_ mode: Mode) -> [String: [Int]] {
        switch mode {
        case .tokens: withTokens
        case .tokensOpenMonitoring: withTokensOpenMonitoring
        case .noTokens: withoutTokens
        }
    }

    /// Spellings of a path the router treats as the same route: each must answer exactly as the
    /// path itself does.
    static func sameRoute(_ path: String) -> [String] {
        [
            path + "/",  // trailing slash
            "/" + path,  // doubled leading slash
            path.replacingOccurrences(of: "/", with: "//"),  // every slash doubled
            path + "?",  // empty query
            path + "?#",  // empty query and fragment
        ]
    }

    /// Spellings that name no route: 404 for every caller, before any authorization.
    static func noRoute(_ path: String) -> [String] {
        let first = path.utf8[path.utf8.index(after: path.utf8.startIndex)]
        let percentEncoded = "/%" + String(first, radix: 16) + path.dropFirst(2)
        return [
            path.uppercased(),
            percentEncoded,  // "/%67et": a letter percent-encoded
            "/." + path,  // a "." segment
            "/x/.." + path,  // a ".." segment
            "/hostmeter" + path,  // a prefix
        ]
    }

    @Test func everyRouteHasItsRow() {
        let routes = Set(APIRouter.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(routes == Set(Self.calls.keys))
        for mode in Mode.allCases {
            #expect(routes == Set(Self.expected(mode).keys), "\(mode)")
            #expect(Self.expected(mode).values.allSatisfy { $0.count == Caller.allCases.count }, "\(mode)")
        }
    }

    @Test(arguments: Mode.allCases)
    func everyRouteVariantAndCallerGetsItsStatus(mode: Mode) async throws {
        var failures: [String] = []
        for route in APIRouter.routes {
            let key = "\(route.method.rawValue) \(route.path)"
            let call = try #require(Self.calls[key])
            let statuses = try #require(Self.expected(mode)[key])
            for (index, caller) in Caller.allCases.enumerated() {
                let expected = statuses[index]
                var requests: [(HTTPRequest.Method, String, Int)] = [(call.method, call.path, expected)]
                requests += Self.sameRoute(call.path).map { (call.method, $0, expected) }
                if call.method == .get {
                    // HEAD is answered as GET is, with the same authorization.
                    requests += ([call.path] + Self.sameRoute(call.path)).map { (.head, $0, expected) }
                }
                requests += Self.noRoute(call.path).map { (call.method, $0, 404) }
                for (method, uri, want) in requests {
                    let got = try await Self.status(
                        mode: mode, method: method, uri: uri, body: call.body, caller: caller, expecting: want)
                    if got != want { failures.append("\(mode) \(caller) \(method) \(uri): \(got), expected \(want)") }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) wrong answers:\n\(failures.prefix(40).joined(separator: "\n"))")
    }

    /// Unknown paths are 404 to everyone, and nothing about the caller is checked first.
    @Test(arguments: Mode.allCases)
    func unknownPathsAre404ForEveryone(mode: Mode) async throws {
        for caller in Caller.allCases {
            for uri in ["/", "/nope", "/get/extra", "/instances/vm-a1/extra", "/%2e%2e/get", "/GET"] {
                for method in [HTTPRequest.Method.get, .put, .delete, .post] {
                    let status = try await Self.status(mode: mode, method: method, uri: uri, body: "{}", caller: caller)
                    #expect(status == 404, "\(mode) \(caller) \(method) \(uri)")
                }
            }
        }
    }

    /// An agent as `mode` configures it, with user A's instance `vm-a1` registered.
    static func application(_ mode: Mode) throws -> some ApplicationProtocol {
        let fixture = try RouterFixture(tokens: mode != .noTokens)
        let registry = InstanceRegistry()
        try registry.put(
            try InstanceManifest(instanceID: "vm-a1", userID: "alice", orgID: "org-1", cgroup: "machine.slice/vm-a1.scope"),
            now: 1_800_000_000)
        let now = fixture.now
        return Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: fixture.state, shipper: fixture.shipper, metrics: fixture.metrics), tokens: fixture.tokens,
                    thresholds: fixture.thresholds, instances: registry,
                    protectHealthAndMetrics: mode != .tokensOpenMonitoring,
                    identity: SigningIdentity.generate().publicIdentity, logger: Logger(label: "test"),
                    now: { now })))
    }

    /// The status of one request. A change that is expected to succeed gets an agent of its own, so
    /// that it cannot decide the next request's answer; everything else shares one per mode.
    static func status(
        mode: Mode, method: HTTPRequest.Method, uri: String, body: String?, caller: Caller,
        expecting expected: Int = 0
    ) async throws -> Int {
        let changes = method != .get && method != .head && (200..<300).contains(expected)
        let app = changes ? try application(mode) : try shared(mode)
        var fields: HTTPFields = [:]
        if let token = caller.token { fields[.authorization] = "Bearer \(token)" }
        if body != nil { fields[.contentType] = "application/json" }
        let headers = fields
        return try await app.test(.router) { client in
            try await client.execute(
                uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }
            ) { Int($0.status.code) }
        }
    }

    private static let agents = Mutex<[Mode: any ApplicationProtocol]>([:])

    private static func shared(_ mode: Mode) throws -> any ApplicationProtocol {
        if let app = agents.withLock({ $0[mode] }) { return app }
        let app = try application(mode)
        agents.withLock { $0[mode] = app }
        return app
    }
}
