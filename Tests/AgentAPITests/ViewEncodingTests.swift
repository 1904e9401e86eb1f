import AgentAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import RuntimeState
import Synchronization
import Testing

/// `/get`'s views are encoded by the first request after a sample, not by the sample, and then
/// served from that encoding: a sample nobody looks at costs no JSON.
@Suite struct ViewEncodingTests {
    @Test func aViewIsEncodedByItsFirstRequestAndOnlyOnce() async throws {
        let fixture = try RouterFixture(tokens: false)
        let snapshot = fixture.state.snapshot
        #expect(!snapshot.instances.contains { $0.encoded.isEncoded }, "the sample encoded views nobody asked for")
        try await fixture.application.test(.router) { client in
            var bodies: [String] = []
            for _ in 0..<2 {
                try await client.execute(uri: "/get", method: .get) { (response: TestResponse) async throws in
                    #expect(response.status == .ok)
                    bodies.append(String(buffer: response.body))
                }
            }
            #expect(bodies[0] == bodies[1])
            #expect(bodies[0].contains(#""instance_id":"vm-a1""#))
        }
        #expect(snapshot.instances.allSatisfy { $0.encoded.isEncoded })
    }

    @Test func encodingRunsOnceHoweverManyAsk() async {
        let calls = Calls()
        let view = EncodedOnce(7) { value in
            calls.count()
            return Array("\(value)".utf8)
        }
        #expect(!view.isEncoded)
        await withTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<16 { group.addTask { view.json } }
            for await bytes in group { #expect(bytes == Array("7".utf8)) }
        }
        #expect(calls.value == 1)
    }

    final class Calls: Sendable {
        private let calls = Mutex(0)
        func count() { calls.withLock { $0 += 1 } }
        var value: Int { calls.withLock { $0 } }
    }
}
