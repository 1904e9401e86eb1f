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

/// `max_instances`: the registry holds at most its limit of instances, files and API together.
/// A new id past it is refused (409 over the API, a problem naming the file for a manifest), an
/// instance already in effect never loses its place to a newcomer, and instances stored beyond a
/// limit lowered since stay metered. Over real SQLite files.
@Suite struct InstanceLimitTests {
    static func manifest(_ id: String, user: String = "alice") throws -> InstanceManifest {
        try InstanceManifest(instanceID: id, userID: user, cgroup: "machine.slice/\(id).scope", vcpus: 2)
    }

    static let filesDir = "/etc/hostmeter/instances.d"

    /// A database file in a fresh directory, removed at the end.
    struct Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("limit-\(UUID().uuidString)")
        var path: String { directory.appendingPathComponent("hostmeter.sqlite").path }
        init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    @Test func aNewIDPastTheLimitIsRefusedNamingTheLimitAndTheKey() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path), limit: 3)
        for id in ["vm-1", "vm-2", "vm-3"] { #expect(try registry.put(Self.manifest(id), now: 1) == true) }
        let fourth = try Self.manifest("vm-4")
        do throws(InstanceRegistryError) {
            try registry.put(fourth, now: 2)
            Issue.record("a fourth instance was registered under a limit of 3")
        } catch {
            guard case .full(let id, let limit) = error else { throw error }
            #expect(id == "vm-4" && limit == 3)
            #expect("\(error)".contains("3 instances are registered"), "\(error)")
            #expect("\(error)".contains("max_instances"), "\(error)")
        }
        #expect(try registry.put(Self.manifest("vm-2", user: "bob"), now: 3) == false, "replacing one at the limit")
        #expect(try registry.delete("vm-1"))
        #expect(try registry.put(Self.manifest("vm-4"), now: 4) == true)
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-2", "vm-3", "vm-4"])
        #expect(try AgentDatabase.open(path: scratch.path).storedInstances().map(\.instanceID) == ["vm-2", "vm-3", "vm-4"])
    }

    @Test func filesPastTheLimitAreProblemsNamingTheFileAndInstancesInEffectKeepTheirPlace() throws {
        let registry = InstanceRegistry(limit: 3)
        try registry.put(Self.manifest("vm-api"), now: 1)
        func file(_ name: String, _ id: String) throws -> (file: String, manifest: InstanceManifest) {
            (Self.filesDir + "/\(name).yaml", try Self.manifest(id))
        }
        registry.replaceFiles([try file("b", "vm-b"), try file("c", "vm-c"), try file("d", "vm-d")], problems: [])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-api", "vm-b", "vm-c"])
        #expect(registry.problems.map(\.file) == [Self.filesDir + "/d.yaml"])
        let message = try #require(registry.problems.first?.message)
        #expect(message.contains("\"vm-d\" is not metered"), "\(message)")
        #expect(message.contains("max_instances"), "\(message)")

        // A file that sorts first does not displace the VMs being billed.
        registry.replaceFiles(
            [try file("a", "vm-a"), try file("b", "vm-b"), try file("c", "vm-c"), try file("d", "vm-d")], problems: [])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-api", "vm-b", "vm-c"])
        #expect(registry.problems.map(\.file) == [Self.filesDir + "/a.yaml", Self.filesDir + "/d.yaml"])

        // Room made: the newcomers come in, in file-name order.
        #expect(try registry.delete("vm-api"))
        registry.replaceFiles(
            [try file("a", "vm-a"), try file("b", "vm-b"), try file("c", "vm-c"), try file("d", "vm-d")], problems: [])
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-a", "vm-b", "vm-c"])
        #expect(registry.problems.map(\.file) == [Self.filesDir + "/d.yaml"])

        // Files fill the registry: the API is refused too.
        #expect(throws: InstanceRegistryError.self) { try registry.put(Self.manifest("vm-new"), now: 2) }
    }

    /// `max_instances` lowered below what is stored: nothing stored is dropped (its VMs keep being
    /// billed), new ones wait until there is room.
    @Test func instancesStoredBeyondALoweredLimitStayInEffect() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        do {
            let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path), limit: 5)
            for index in 1...5 { try registry.put(Self.manifest("vm-\(index)"), now: 1) }
        }
        let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path), limit: 2)
        #expect(registry.count == 5)
        #expect(registry.instances.count == 5)
        #expect(throws: InstanceRegistryError.self) { try registry.put(Self.manifest("vm-6"), now: 2) }
        #expect(try registry.put(Self.manifest("vm-1", user: "bob"), now: 3) == false)
        registry.replaceFiles([(Self.filesDir + "/f.yaml", try Self.manifest("vm-f"))], problems: [])
        #expect(registry.problems.map(\.file) == [Self.filesDir + "/f.yaml"])
        for index in 1...4 { #expect(try registry.delete("vm-\(index)")) }
        #expect(try registry.put(Self.manifest("vm-6"), now: 4) == true)
        #expect(registry.instances.map(\.manifest.instanceID) == ["vm-5", "vm-6"])
    }

    /// Concurrent PUTs of new ids cannot together pass the limit: room is taken before the write.
    @Test func concurrentRegistrationsStopAtTheLimit() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let registry = try InstanceRegistry(database: try AgentDatabase.open(path: scratch.path), limit: 10)
        let accepted = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask { (try? registry.put(Self.manifest("vm-\(index)"), now: 1)) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(accepted == 10)
        #expect(registry.count == 10)
        #expect(try AgentDatabase.open(path: scratch.path).storedInstances().count == 10)
    }

    @Test func putPastTheLimitIs409NamingTheLimitAndTheKey() async throws {
        let database = try AgentDatabase.inMemory()
        let registry = try InstanceRegistry(database: database, limit: 2)
        let application = Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(
                        state: AgentState(
                            AgentSnapshot(hostID: "h", intervalSeconds: 30, sampleSeconds: 5, outboxMaxBytes: 1 << 30, startedAt: 0)),
                        shipper: ShipperStatus(), metrics: AgentMetrics()),
                    tokens: TokenStore.hashing(["limit-admin-token": .admin]),
                    thresholds: try ThresholdRuleBook(configuration: [], database: database), instances: registry,
                    logger: Logger(label: "test"), now: { 1_800_000_000 })))
        try await application.test(.router) { client in
            func put(_ id: String) async throws -> TestResponse {
                try await client.execute(
                    uri: "/instances/\(id)", method: .put,
                    headers: [.contentType: "application/json", .authorization: "Bearer limit-admin-token"],
                    body: ByteBuffer(string: #"{"user_id": "alice", "cgroup": "c"}"#))
            }
            #expect(try await put("vm-1").status == .created)
            #expect(try await put("vm-2").status == .created)
            let refused = try await put("vm-3")
            #expect(refused.status == .conflict)
            let message = try errorMessage(refused)
            #expect(message.contains("2 instances are registered"), "\(message)")
            #expect(message.contains("max_instances"), "\(message)")
            #expect(try await put("vm-2").status == .ok)
        }
        #expect(try database.storedInstances().map(\.instanceID) == ["vm-1", "vm-2"])
    }

    /// Thousands of instances: `GET /instances` shows each with its own running state, and
    /// `/metrics` has one series per instance in each family, label values escaped. (How long
    /// they take is measured by `hostmeter-bench instances`, not asserted here.)
    @Test func manyInstancesAreListedAndExposedOnceEach() async throws {
        let count = 3_000
        let registry = InstanceRegistry(limit: count)
        var views: [InstanceView] = []
        for index in 0..<count {
            let id = String(format: "vm-%05d", index)
            try registry.put(Self.manifest(id, user: "u-\(index % 7)"), now: 1)
            views.append(
                InstanceView(
                    instanceID: id, userID: "u-\(index % 7)", orgID: nil, isHost: false, running: index % 3 != 0,
                    gauges: InstanceGauges(cpuPercent: Double(index)), periodSoFar: nil, missing: []))
        }
        views.append(
            InstanceView(
                instanceID: "odd", userID: "a\"b\\c\nd", orgID: nil, isHost: false, running: true,
                gauges: InstanceGauges(), periodSoFar: nil, missing: []))
        var snapshot = AgentSnapshot(hostID: "h", intervalSeconds: 30, sampleSeconds: 5, outboxMaxBytes: 1 << 30, startedAt: 0)
        snapshot.instances = views
        let database = try AgentDatabase.inMemory()
        let application = Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: AgentState(snapshot), shipper: ShipperStatus(), metrics: AgentMetrics()), tokens: .open,
                    thresholds: try ThresholdRuleBook(configuration: [], database: database), instances: registry,
                    logger: Logger(label: "test"))))
        try await application.test(.router) { client in
            let listing = try await client.execute(uri: "/instances", method: .get)
            let list = try #require(try json(listing)["instances"] as? [[String: Any]])
            #expect(list.count == count)
            for (index, item) in list.enumerated() {
                #expect(item["instance_id"] as? String == String(format: "vm-%05d", index))
                #expect(item["running"] as? Bool == (index % 3 != 0))
            }

            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            let lines = metrics.split(separator: "\n")
            for name in [
                "hostmeter_instance_cpu_percent", "hostmeter_instance_memory_used_bytes", "hostmeter_instance_memory_percent",
                "hostmeter_instance_network_egress_bytes_per_second", "hostmeter_instance_network_ingress_bytes_per_second",
                "hostmeter_instance_period_cpu_seconds", "hostmeter_instance_storage_used_bytes", "hostmeter_instance_running",
            ] {
                #expect(lines.filter { $0.hasPrefix(name + "{") }.count == count + 1, "\(name)")
                #expect(lines.filter { $0 == "# TYPE \(name) gauge" }.count == 1, "\(name)")
            }
            #expect(metrics.contains(#"hostmeter_instance_cpu_percent{instance_id="vm-02999",user_id="u-3"} 2999.0"#))
            #expect(metrics.contains(#"hostmeter_instance_running{instance_id="vm-00003",user_id="u-3"} 0.0"#))
            #expect(metrics.contains(#"hostmeter_instance_cpu_percent{instance_id="odd",user_id="a\"b\\c\nd"} nan"#))
        }
    }
}
