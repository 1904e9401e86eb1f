import AgentAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Metering
import NIOCore
import Testing
import RuntimeState

/// Ids are compared as bytes everywhere: Swift's `String ==` calls `e\u{301}ve` and `\u{e9}ve`
/// equal (canonical equivalence), which would let one user see or replace another's instances.
@Suite struct IdentifierBytesTests {
    static let precomposed = "\u{e9}ve"  // é as one scalar
    static let decomposed = "e\u{301}ve"  // e and a combining acute

    @Test func theTwoSpellingsAreEqualStringsButDifferentBytes() {
        #expect(Self.precomposed == Self.decomposed)
        #expect(!Self.precomposed.utf8.elementsEqual(Self.decomposed.utf8))
    }

    /// A user token for one spelling sees nothing of the other spelling's instances.
    @Test func aUserSeesOnlyInstancesOfTheirOwnBytes() async throws {
        let fixture = try RouterFixture(tokens: true)
        let registry = InstanceRegistry()
        try registry.put(
            try InstanceManifest(instanceID: "vm-eve", userID: Self.precomposed, cgroup: "machine.slice/vm-eve.scope"),
            now: 1_800_000_000)
        let impostor = "impostor-token-0123456789"
        let owner = "owner-token-0123456789"
        let tokens = TokenStore.hashing([impostor: .user(Self.decomposed), owner: .user(Self.precomposed)])
        let app = Application(
            router: APIRouter.build(
                APIDependencies(
                    status: AgentStatus(state: fixture.state, shipper: fixture.shipper, metrics: fixture.metrics), tokens: tokens,
                    thresholds: fixture.thresholds, instances: registry, logger: Logger(label: "test"))))
        try await app.test(.router) { client in
            try await client.execute(uri: "/instances", method: .get, headers: bearer(impostor)) {
                (response: TestResponse) async throws in
                #expect(try instanceIDs(response) == [])
            }
            try await client.execute(uri: "/instances/vm-eve", method: .get, headers: bearer(impostor)) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/instances", method: .get, headers: bearer(owner)) {
                (response: TestResponse) async throws in
                #expect(try instanceIDs(response) == ["vm-eve"])
            }
            try await client.execute(uri: "/instances/vm-eve", method: .get, headers: bearer(owner)) {
                #expect($0.status == .ok)
            }
        }
    }

    /// A second id that is the first's canonical equivalent is refused: it would be the same key in
    /// every map of the agent while SQLite keeps both, so one of the two would go unmetered.
    @Test func anEquivalentIDIsRefusedAndNotFound() throws {
        let registry = InstanceRegistry()
        let first = "caf" + Self.precomposed
        let second = "caf" + Self.decomposed
        try registry.put(try InstanceManifest(instanceID: first, userID: "u1", cgroup: "c1"), now: 1)
        #expect(registry.instance(second) == nil)
        #expect(registry.instance(first) != nil)
        let equivalent = try InstanceManifest(instanceID: second, userID: "u2", cgroup: "c2")
        do {
            try registry.put(equivalent, now: 2)
            Issue.record("an equivalent id was registered")
        } catch {
            guard case .equivalentID(let id, let registered) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(id.utf8.elementsEqual(second.utf8) && registered.utf8.elementsEqual(first.utf8))
            #expect(error.description.contains("compared as bytes"))
        }
        #expect(try registry.delete(second) == false)
        #expect(registry.instance(first)?.manifest.userID == "u1")
        #expect(registry.instances.count == 1)
    }
}
