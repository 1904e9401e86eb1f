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
import RuntimeState

/// A router with an instance registry: two instances from files (alice's and bob's), one of
/// alice's registered over the API, one refused file; and a snapshot with the host and the
/// instances of three users in two organisations.
struct InstanceRoutesFixture {
    static let adminToken = "admin-token-instances-0123"
    static let aliceToken = "alice-token-instances-0123"
    static let bobToken = "bob-token-instances-0123"
    static let filesDir = "/etc/hostmeter/instances.d"
    static let brokenProblem = ManifestProblem(
        file: filesDir + "/broken.yaml", message: "line 4: vcpus: must be a whole number from 1 to 4096")

    let database: AgentDatabase
    let registry: InstanceRegistry
    let state: AgentState
    let thresholds: ThresholdRuleBook
    let tokens: TokenStore

    init(tokens: Bool = true) throws {
        database = try AgentDatabase.inMemory()
        thresholds = try ThresholdRuleBook(configuration: [], database: database)
        self.tokens =
            tokens
            ? TokenStore.hashing([Self.adminToken: .admin, Self.aliceToken: .user("alice"), Self.bobToken: .user("bob")])
            : .open
        registry = try InstanceRegistry(database: database, reserved: ["host-7"])
        registry.replaceFiles(
            [
                (Self.filesDir + "/vm-a1.yaml", try InstanceManifest(
                    instanceID: "vm-a1", userID: "alice", orgID: "org-1", cgroup: "machine.slice/vm-a1.scope",
                    interfaces: ["tap-a1"], vcpus: 2)),
                (Self.filesDir + "/vm-b1.yaml", try InstanceManifest(
                    instanceID: "vm-b1", userID: "bob", orgID: "org-2", cgroup: "machine.slice/vm-b1.scope", vcpus: 4)),
            ],
            problems: [Self.brokenProblem])
        try registry.put(
            try InstanceManifest(instanceID: "vm-a2", userID: "alice", orgID: "org-1", interfaces: ["tap-a2"], vcpus: 1),
            now: 1_800_000_000)

        var snapshot = AgentSnapshot(
            hostID: "host-7", intervalSeconds: 30, sampleSeconds: 5, outboxMaxBytes: 1 << 30, startedAt: 1_800_000_000)
        snapshot.lastSample = SampleStatus(wallNanos: 1_800_000_008_000_000_000, durationNanos: 100_000, failures: [])
        snapshot.hostJSON = Array(#"{"boot_id":"b"}"#.utf8)
        snapshot.gpusJSON = Array(#"[{"index":0}]"#.utf8)
        func view(_ id: String, _ user: String, _ org: String?, running: Bool = true, host: Bool = false) -> InstanceView {
            InstanceView(
                instanceID: id, userID: user, orgID: org, isHost: host, running: running,
                gauges: InstanceGauges(cpuPercent: running ? 10 : nil), periodSoFar: nil,
                missing: running ? [] : ["cgroup machine.slice/\(id).scope missing"])
        }
        snapshot.instances = [
            view("host-7", "operator", nil, host: true),
            view("vm-a1", "alice", "org-1"),
            view("vm-a2", "alice", "org-1", running: false),
            view("vm-b1", "bob", "org-2"),
            view("vm-c1", "carol", "org-2"),
        ]
        state = AgentState(snapshot)
    }

    var application: some ApplicationProtocol {
        Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: state, shipper: ShipperStatus(), metrics: AgentMetrics()), tokens: tokens,
                    thresholds: thresholds, instances: registry, logger: Logger(label: "test"),
                    now: { 1_800_000_010 })))
    }

    /// `PUT /instances/{id}` with a JSON body, as admin unless told otherwise.
    static func put(
        _ client: some TestClientProtocol, _ id: String, _ body: String, token: String? = InstanceRoutesFixture.adminToken,
        contentType: String? = "application/json"
    ) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let contentType { headers[.contentType] = contentType }
        return try await client.execute(uri: "/instances/\(id)", method: .put, headers: headers, body: ByteBuffer(string: body))
    }

    static func get(_ client: some TestClientProtocol, _ uri: String, token: String? = InstanceRoutesFixture.adminToken) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: token.map(bearer) ?? [:])
    }

    static func delete(_ client: some TestClientProtocol, _ id: String, token: String? = InstanceRoutesFixture.adminToken) async throws -> TestResponse {
        try await client.execute(uri: "/instances/\(id)", method: .delete, headers: token.map(bearer) ?? [:])
    }
}

@Suite struct InstanceRoutesTests {
    typealias Fixture = InstanceRoutesFixture

    func instances(_ response: TestResponse) throws -> [String: [String: Any]] {
        let list = try #require(try json(response)["instances"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: list.map { ($0["instance_id"] as? String ?? "", $0) })
    }

    // MARK: GET /instances

    @Test func adminSeesEveryInstanceWithItsSourceAndTheRefusedFiles() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let response = try await Fixture.get(client, "/instances")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(try instanceIDs(response) == ["vm-a1", "vm-a2", "vm-b1"])
            let byID = try instances(response)
            let a1 = try #require(byID["vm-a1"])
            #expect(a1["source"] as? String == "file")
            #expect(a1["file"] as? String == Fixture.filesDir + "/vm-a1.yaml")
            #expect(a1["running"] as? Bool == true)
            #expect(a1["user_id"] as? String == "alice")
            #expect(a1["org_id"] as? String == "org-1")
            #expect(a1["cgroup"] as? String == "machine.slice/vm-a1.scope")
            #expect(a1["interfaces"] as? [String] == ["tap-a1"])
            #expect(a1["vcpus"] as? Int == 2)
            let a2 = try #require(byID["vm-a2"])
            #expect(a2["source"] as? String == "api")
            #expect(a2["file"] is NSNull)
            #expect(a2["running"] as? Bool == false)
            #expect(a2["cgroup"] is NSNull)

            let problems = try #require(try json(response)["problems"] as? [[String: Any]])
            #expect(problems.count == 1)
            #expect(problems.first?["file"] as? String == Fixture.brokenProblem.file)
            #expect(problems.first?["message"] as? String == Fixture.brokenProblem.message)

            #expect(try instanceIDs(try await Fixture.get(client, "/instances?user_id=bob")) == ["vm-b1"])
            #expect(try instanceIDs(try await Fixture.get(client, "/instances?user_id=nobody")).isEmpty)
            let unknown = try await Fixture.get(client, "/instances?org_id=org-1")
            #expect(unknown.status == .badRequest)
            #expect(try errorMessage(unknown).contains("unknown query parameter \"org_id\""))
        }
    }

    @Test func aUserSeesOnlyTheirOwnInstancesAndNoProblems() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let alice = try await Fixture.get(client, "/instances", token: Fixture.aliceToken)
            #expect(alice.status == .ok)
            #expect(try instanceIDs(alice) == ["vm-a1", "vm-a2"])
            #expect(try json(alice)["problems"] as? [Any] != nil)
            #expect((try json(alice)["problems"] as? [Any])?.isEmpty == true)
            let bob = try await Fixture.get(client, "/instances", token: Fixture.bobToken)
            #expect(try instanceIDs(bob) == ["vm-b1"])
            // Asking for another user's instances gives none, not theirs.
            let peek = try await Fixture.get(client, "/instances?user_id=bob", token: Fixture.aliceToken)
            #expect(peek.status == .ok)
            #expect(try instanceIDs(peek).isEmpty)

            let anonymous = try await Fixture.get(client, "/instances", token: nil)
            #expect(anonymous.status == .unauthorized)
            #expect(try errorMessage(anonymous) == "a bearer token is required")
            let wrong = try await Fixture.get(client, "/instances/vm-a1", token: "not-a-token")
            #expect(wrong.status == .unauthorized)
        }
    }

    // MARK: GET /instances/{id}

    @Test func oneInstanceIsShownToAdminAndToItsUserOnly() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let admin = try await Fixture.get(client, "/instances/vm-b1")
            #expect(admin.status == .ok)
            #expect(try json(admin)["instance_id"] as? String == "vm-b1")
            #expect(try json(admin)["source"] as? String == "file")
            #expect(try json(admin)["vcpus"] as? Int == 4)

            let own = try await Fixture.get(client, "/instances/vm-a2", token: Fixture.aliceToken)
            #expect(own.status == .ok)
            #expect(try json(own)["source"] as? String == "api")

            // Another user's instance is answered exactly like one that does not exist.
            let others = try await Fixture.get(client, "/instances/vm-b1", token: Fixture.aliceToken)
            #expect(others.status == .notFound)
            #expect(try errorMessage(others) == "no instance \"vm-b1\"")
            let none = try await Fixture.get(client, "/instances/vm-zz", token: Fixture.aliceToken)
            #expect(none.status == .notFound)
            #expect(try errorMessage(none) == "no instance \"vm-zz\"")
            // The host is not a registered instance.
            #expect(try await Fixture.get(client, "/instances/host-7").status == .notFound)
        }
    }

    // MARK: PUT /instances/{id}

    @Test func putCreatesThenReplacesAndGetShowsItFromTheAPI() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let created = try await Fixture.put(
                client, "vm-n1", #"{"user_id": "alice", "org_id": "org-1", "interfaces": ["tap-n1"], "vcpus": 2}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let body = try json(created)
            #expect(body["instance_id"] as? String == "vm-n1")
            #expect(body["source"] as? String == "api")
            #expect(body["file"] is NSNull)
            #expect(body["running"] is NSNull)
            #expect(body["vcpus"] as? Int == 2)

            let replaced = try await Fixture.put(
                client, "vm-n1", #"{"instance_id": "vm-n1", "user_id": "alice", "interfaces": ["tap-n1"], "vcpus": 6}"#)
            #expect(replaced.status == .ok, "\(String(buffer: replaced.body))")
            #expect(try json(replaced)["vcpus"] as? Int == 6)

            // Not sampled yet: running is null, not false.
            let shown = try await Fixture.get(client, "/instances/vm-n1")
            #expect(shown.status == .ok)
            #expect(try json(shown)["source"] as? String == "api")
            #expect(try json(shown)["running"] is NSNull)
            #expect(try json(shown)["vcpus"] as? Int == 6)
            #expect(try json(shown)["org_id"] is NSNull)
            #expect(try instanceIDs(try await Fixture.get(client, "/instances")) == ["vm-a1", "vm-a2", "vm-b1", "vm-n1"])
            #expect(try instanceIDs(try await Fixture.get(client, "/instances", token: Fixture.aliceToken)) == ["vm-a1", "vm-a2", "vm-n1"])
        }
        #expect(fixture.registry.instance("vm-n1")?.source == .api)
        let stored = try fixture.database.storedInstances().first { $0.instanceID == "vm-n1" }
        #expect(try stored.map { try InstanceManifest.decode(json: $0.manifest).vcpus } == 6)
        #expect(stored?.updatedAt == 1_800_000_010)
    }

    @Test func aGetBodyCanBeEditedAndPutBack() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let shown = try await Fixture.get(client, "/instances/vm-a2")
            var body = try json(shown)
            #expect(body.keys.contains("running"))
            body["vcpus"] = 3
            let edited = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            let response = try await Fixture.put(client, "vm-a2", edited)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            #expect(try json(response)["vcpus"] as? Int == 3)
            // A charset parameter is still JSON.
            let charset = try await Fixture.put(
                client, "vm-a2", edited, contentType: "application/json; charset=utf-8")
            #expect(charset.status == .ok)
            // No content type at all is taken as JSON.
            let untyped = try await Fixture.put(client, "vm-a2", edited, contentType: nil)
            #expect(untyped.status == .ok)
        }
        #expect(fixture.registry.instance("vm-a2")?.manifest.vcpus == 3)
    }

    @Test(arguments: [
        (#"{"instance_id": "vm-other", "user_id": "alice", "cgroup": "c"}"#, #"instance_id: must be "vm-new", the id in the path"#),
        (#"{"instance_id": 7, "user_id": "alice", "cgroup": "c"}"#, "instance_id:"),
        (#"{"instance_id": null, "user_id": "alice", "cgroup": "c"}"#, "instance_id:"),
        (#"{"cgroup": "c"}"#, "user_id: is required"),
        (#"{"user_id": "", "cgroup": "c"}"#, "user_id: must be 1 to 256 bytes"),
        (#"{"user_id": "alice"}"#, "cgroup: an instance needs a cgroup or at least one interface"),
        (#"{"user_id": "alice", "cgroup": "a/../b"}"#, "cgroup: must be a path below"),
        (#"{"user_id": "alice", "interfaces": ["tap0", "tap/1"]}"#, "interfaces[1]: must be an interface name"),
        (#"{"user_id": "alice", "interfaces": ["tap0", "tap0"]}"#, #"interfaces[1]: "tap0" is listed twice"#),
        (#"{"user_id": "alice", "cgroup": "c", "disks": ["vm.img"]}"#, "disks[0]: must be an absolute path"),
        (#"{"user_id": "alice", "cgroup": "c", "gpus": [0, "0"]}"#, "gpus[1]"),
        (#"{"user_id": "alice", "cgroup": "c", "vcpus": 0}"#, "vcpus: must be a whole number from 1 to 4096"),
        (#"{"user_id": "alice", "cgroup": "c", "vcpus": 5000}"#, "vcpus: must be a whole number from 1 to 4096"),
        (#"{"user_id": "alice", "cgroup": "c", "vcpus": "2"}"#, "vcpus: must be a whole number"),
        (#"{"user_id": "alice", "cgroup": "c", "vcpus": 1.5}"#, "vcpus: must be a whole number"),
        (#"{"user_id": "alice", "cgroup": "c", "colour": "red"}"#, "colour: unknown field"),
        (#"{"user_id": "alice", "cgroup": 5}"#, "cgroup: must be a string"),
        (#"[{"user_id": "alice", "cgroup": "c"}]"#, "the body must be a JSON object"),
        (#""vm""#, "the body must be a JSON object"),
        (#"{"user_id": "alice", "cgroup": "c""#, "malformed JSON"),
        ("", "malformed JSON"),
    ])
    func invalidBodiesAre400NamingTheField(body: String, message: String) async throws {
        let fixture = try Fixture()
        let before = fixture.registry.instances
        try await fixture.application.test(.router) { client in
            let response = try await Fixture.put(client, "vm-new", body)
            #expect(response.status == .badRequest)
            #expect(response.headers[.contentType] == "application/json")
            let text = try errorMessage(response)
            #expect(text.hasPrefix("invalid manifest: "), "\(text)")
            #expect(text.contains(message), "\(text)")
        }
        #expect(fixture.registry.instance("vm-new") == nil)
        #expect(fixture.registry.instances == before)
    }

    @Test func anIDLongerThanTheLimitIsRefusedNamingInstanceID() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let response = try await Fixture.put(client, String(repeating: "x", count: 300), #"{"user_id": "alice", "cgroup": "c"}"#)
            #expect(response.status == .badRequest)
            #expect(try errorMessage(response).contains("instance_id: must be 1 to 256 bytes"))
        }
    }

    @Test func putForAFileDefinedOrTheHostsIDIsAConflict() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let file = try await Fixture.put(client, "vm-a1", #"{"user_id": "alice", "cgroup": "c", "vcpus": 9}"#)
            #expect(file.status == .conflict)
            let fileMessage = try errorMessage(file)
            #expect(fileMessage.contains("vm-a1"))
            #expect(fileMessage.contains(Fixture.filesDir + "/vm-a1.yaml"), "\(fileMessage)")

            let host = try await Fixture.put(client, "host-7", #"{"user_id": "operator", "cgroup": "c"}"#)
            #expect(host.status == .conflict)
            #expect(try errorMessage(host).contains("host.instance_id"))

            let deleteFile = try await Fixture.delete(client, "vm-a1")
            #expect(deleteFile.status == .conflict)
            #expect(try errorMessage(deleteFile).contains(Fixture.filesDir + "/vm-a1.yaml"))
        }
        #expect(fixture.registry.instance("vm-a1")?.manifest.vcpus == 2)
        #expect(fixture.registry.instance("host-7") == nil)
        #expect(try fixture.database.storedInstances().map(\.instanceID) == ["vm-a2"])
    }

    @Test func writesNeedAnAdminTokenAndAJSONBodyWithinTheLimit() async throws {
        let fixture = try Fixture()
        let body = #"{"user_id": "alice", "cgroup": "c"}"#
        try await fixture.application.test(.router) { client in
            let user = try await Fixture.put(client, "vm-n1", body, token: Fixture.aliceToken)
            #expect(user.status == .forbidden)
            #expect(try errorMessage(user) == "this needs an admin token")
            let anonymous = try await Fixture.put(client, "vm-n1", body, token: nil)
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.wwwAuthenticate] == "Bearer realm=\"hostmeter\"")
            #expect(try await Fixture.delete(client, "vm-a2", token: Fixture.aliceToken).status == .forbidden)
            #expect(try await Fixture.delete(client, "vm-a2", token: nil).status == .unauthorized)

            let huge = #"{"user_id": "alice", "cgroup": "c", "org_id": ""# + String(repeating: "x", count: 70 * 1024) + "\"}"
            let tooLarge = try await Fixture.put(client, "vm-n1", huge)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try errorMessage(tooLarge).contains("65536 bytes"))

            let text = try await Fixture.put(client, "vm-n1", body, contentType: "text/plain")
            #expect(text.status == .unsupportedMediaType)
            #expect(try errorMessage(text).contains("application/json"))
            let yaml = try await Fixture.put(client, "vm-n1", "user_id: alice\ncgroup: c\n", contentType: "application/yaml")
            #expect(yaml.status == .unsupportedMediaType)
        }
        #expect(fixture.registry.instance("vm-n1") == nil)
        #expect(fixture.registry.instance("vm-a2") != nil)
    }

    @Test func withoutTokensNobodyMayWrite() async throws {
        let fixture = try Fixture(tokens: false)
        try await fixture.application.test(.router) { client in
            // No credential can be shown, so no change can be made: not even with a would-be token.
            for token in [nil, Fixture.adminToken] {
                let put = try await Fixture.put(client, "vm-n1", #"{"user_id": "dave", "cgroup": "c"}"#, token: token)
                #expect(put.status == .forbidden)
                #expect(try errorMessage(put).contains("api.tokens_file"))
                #expect(try await Fixture.delete(client, "vm-a2", token: token).status == .forbidden)
            }
            // Reads stay open on the loopback.
            #expect(try instanceIDs(try await Fixture.get(client, "/instances", token: nil)).count == 3)
        }
        #expect(fixture.registry.instance("vm-n1") == nil)
        #expect(fixture.registry.instance("vm-a2") != nil)
    }

    // MARK: DELETE /instances/{id}

    @Test func deleteTwiceIs204Then404() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let first = try await Fixture.delete(client, "vm-a2")
            #expect(first.status == .noContent)
            #expect(first.body.readableBytes == 0)
            let second = try await Fixture.delete(client, "vm-a2")
            #expect(second.status == .notFound)
            #expect(try errorMessage(second).contains("vm-a2"))
            #expect(try await Fixture.get(client, "/instances/vm-a2").status == .notFound)
            #expect(try instanceIDs(try await Fixture.get(client, "/instances")) == ["vm-a1", "vm-b1"])
            // Never registered, and the host's id: nothing to delete.
            #expect(try await Fixture.delete(client, "vm-zz").status == .notFound)
            let host = try await Fixture.delete(client, "host-7")
            #expect(host.status == .notFound || host.status == .conflict)
        }
        #expect(try fixture.database.storedInstances().isEmpty)
        // Deleted for good: a new registry on the same database does not have it.
        #expect(try InstanceRegistry(database: fixture.database).instances.isEmpty)
    }

    // MARK: Other methods

    @Test func otherMethodsAre405WithAllow() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let cases: [(String, HTTPRequest.Method, String)] = [
                ("/instances", .post, "GET, HEAD"),
                ("/instances", .put, "GET, HEAD"),
                ("/instances", .delete, "GET, HEAD"),
                ("/instances/vm-a1", .post, "GET, HEAD, PUT, DELETE"),
                ("/instances/vm-a1", .patch, "GET, HEAD, PUT, DELETE"),
            ]
            for (uri, method, allowed) in cases {
                try await client.execute(
                    uri: uri, method: method, headers: bearer(Fixture.adminToken), body: ByteBuffer(string: "{}")
                ) { (response: TestResponse) async throws in
                    #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
                    #expect(response.headers[.allow] == allowed, "\(method) \(uri)")
                    #expect(try errorMessage(response).contains("\(method) is not allowed on \(uri)"))
                }
            }
        }
    }

    // MARK: GET /get

    @Test func getShowsAUserOnlyTheirOwnInstancesWithoutTheHost() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let alice = try await Fixture.get(client, "/get", token: Fixture.aliceToken)
            #expect(alice.status == .ok)
            #expect(try instanceIDs(alice) == ["vm-a1", "vm-a2"])
            #expect(try json(alice)["host"] is NSNull)
            #expect((try json(alice)["gpus"] as? [Any])?.isEmpty == true)
            #expect(try json(alice)["host_id"] as? String == "host-7")
            let listed = try #require(try json(alice)["instances"] as? [[String: Any]])
            #expect(listed.map { $0["running"] as? Bool } == [true, false])
            #expect(listed.allSatisfy { $0["host"] as? Bool == false })

            // Carol shares bob's organisation; bob still sees only his own.
            #expect(try instanceIDs(try await Fixture.get(client, "/get", token: Fixture.bobToken)) == ["vm-b1"])

            #expect(try instanceIDs(try await Fixture.get(client, "/get?user_id=alice", token: Fixture.aliceToken)) == ["vm-a1", "vm-a2"])
            #expect(try instanceIDs(try await Fixture.get(client, "/get?instance_id=vm-a2", token: Fixture.aliceToken)) == ["vm-a2"])
            let otherOrg = try await Fixture.get(client, "/get?org_id=org-2", token: Fixture.aliceToken)
            #expect(otherOrg.status == .ok)
            #expect(try instanceIDs(otherOrg).isEmpty)
            for uri in ["/get?user_id=bob", "/get?instance_id=vm-b1", "/get?instance_id=host-7"] {
                #expect(try await Fixture.get(client, uri, token: Fixture.aliceToken).status == .notFound, "\(uri)")
            }
        }
    }

    @Test func getFiltersByUserAndOrgForAdmin() async throws {
        let fixture = try Fixture()
        try await fixture.application.test(.router) { client in
            let all = try await Fixture.get(client, "/get")
            #expect(try instanceIDs(all) == ["host-7", "vm-a1", "vm-a2", "vm-b1", "vm-c1"])
            #expect(try json(all)["host"] is [String: Any])
            #expect((try json(all)["gpus"] as? [Any])?.count == 1)

            let cases: [(String, [String])] = [
                ("/get?user_id=bob", ["vm-b1"]),
                ("/get?user_id=alice", ["vm-a1", "vm-a2"]),
                ("/get?org_id=org-1", ["vm-a1", "vm-a2"]),
                ("/get?org_id=org-2", ["vm-b1", "vm-c1"]),
                ("/get?org_id=org-2&user_id=carol", ["vm-c1"]),
                ("/get?org_id=org-1&user_id=bob", []),
                ("/get?org_id=org-9", []),
                ("/get?instance_id=vm-c1&org_id=org-2", ["vm-c1"]),
            ]
            for (uri, expected) in cases {
                let response = try await Fixture.get(client, uri)
                #expect(response.status == .ok, "\(uri)")
                #expect(try instanceIDs(response) == expected, "\(uri)")
            }
        }
    }
}
