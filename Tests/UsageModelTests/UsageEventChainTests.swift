import Foundation
import Testing
import TestSupport
import UsageModel

/// UsageEvent 1.1's hash: the bytes written straight equal RFC 8785's form of the event's value,
/// and the hash is what a verifier gets from the wire JSON by removing `hash` and canonicalizing
/// the rest, over generated events with every awkward string and double.
@Suite struct UsageEventChainTests {
    static func event(_ values: inout AwkwardValues, index: Int) -> UsageEvent {
        var event = UsageEvent(
            hostID: "h" + values.string(), instanceID: "i" + values.string(), userID: "u" + values.string(),
            orgID: index % 3 == 0 ? nil : values.string(),
            period: Period(start: Int64(index) * 30, end: Int64(index) * 30 + 30),
            metrics: UsageMetrics(
                cpuSeconds: Int64.random(in: 0...1_000_000, using: &values.random), cpuPercentAvg: abs(values.double()),
                memoryGB: abs(values.double()), memoryPercent: abs(values.double()), storageGB: abs(values.double()),
                networkEgressMB: abs(values.double()), networkIngressMB: abs(values.double()),
                gpuSeconds: Int64.random(in: 0...1_000_000, using: &values.random)),
            timestamp: Int64(index) * 30 + 31)
        event.orgID = event.orgID.map { $0.isEmpty ? "o" : $0 }
        return event
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func theHashIsTheCanonicalFormOfTheWireJSON(seed: UInt64) throws {
        var values = AwkwardValues(seed: seed)
        var head: ChainHead?
        for index in 0..<200 {
            let event = try Self.event(&values, index: index).chained(after: head)
            #expect(event.seq == (head?.seq ?? 0) + 1 && event.prevHash == head?.hash && event.version == "1.1")
            head = event.chainHead
            for withHash in [false, true] {
                #expect(try event.canonicalBytes(includingHash: withHash) == event.canonicalValue(includingHash: withHash).canonicalBytes())
            }
            // As a verifier sees it: the wire bytes, parsed, without `hash`.
            let wire = try UsageEventEncoder(version: .v1_1).encode(event)
            guard case .object(var members) = try CanonicalJSON(parsing: wire) else {
                Issue.record("the wire JSON is not an object")
                return
            }
            #expect(members.removeValue(forKey: "hash") == .string(event.hash!))
            #expect(UsageEvent.hexSHA256(try CanonicalJSON.object(members).canonicalBytes()) == event.hash)
            #expect(try JSONDecoder().decode(UsageEvent.self, from: wire) == event)
        }
    }

    @Test func aChainedEventIsNeverMergedAndA10EventCarriesNoChain() throws {
        var values = AwkwardValues(seed: 9)
        let first = try Self.event(&values, index: 0).chained(after: nil)
        var second = try Self.event(&values, index: 1).chained(after: first.chainHead)
        #expect(!UsageEvent.canMerge(first, second))
        second.hostID = first.hostID
        let plain = try JSONDecoder().decode(UsageEvent.self, from: try UsageEventEncoder(version: .v1_0).encode(second))
        #expect(plain.seq == nil && plain.hash == nil && plain.prevHash == nil && plain.version == "1.0")
        #expect(throws: UnchainedEvent.self) { _ = try UsageEventEncoder(version: .v1_1).encode(plain) }
    }
}
