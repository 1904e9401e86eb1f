import Foundation
import Testing

@testable import Shipping

/// A host's offset in the fleet's spread: fixed for its host_id, uniform over a fleet.
@Suite struct FleetPacingTests {
    @Test func aHostKeepsItsOffset() {
        let offset = FleetPacing.offset(hostID: "host-0042", spreadSeconds: 30)
        #expect(offset == FleetPacing.offset(hostID: "host-0042", spreadSeconds: 30))
        #expect(offset >= 0 && offset < 30)
        #expect(FleetPacing.offset(hostID: "host-0042", spreadSeconds: 0) == 0)
        #expect(abs(FleetPacing.offset(hostID: "host-0042", spreadSeconds: 60) - 2 * offset) < 1e-9)
    }

    @Test func aFleetSpreadsEvenly() {
        var seconds = [Int](repeating: 0, count: 30)
        for host in 0..<10_000 {
            let offset = FleetPacing.offset(hostID: "host-\(host)", spreadSeconds: 30)
            #expect(offset >= 0 && offset < 30)
            seconds[Int(offset)] += 1
        }
        // 333 a second on average; a uniform hash keeps every second within a fifth of it.
        #expect(seconds.min()! > 266 && seconds.max()! < 400, "\(seconds)")
    }
}
