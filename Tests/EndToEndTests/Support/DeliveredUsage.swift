import Foundation
import Outbox
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// Runs the agent of `scratch` `kills` times, each for a random 1.3 to 2.6 s before SIGKILL, so that
/// kills land anywhere in its work (mid-batch among them); `beforeRound` runs after each start
/// (faults of the peer). Returns when the last one is gone.
func killRepeatedly(
    _ scratch: AgentScratch, kills: Int, beforeRound: (Int) throws -> Void = { _ in },
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    var random = SystemRandomNumberGenerator()
    for round in 0..<kills {
        let agent = try AgentChild(scratch, stderr: .nullDevice)
        try beforeRound(round)
        try await Task.sleep(for: .milliseconds(Int.random(in: 1300...2600, using: &random)))
        #expect(agent.isRunning, sourceLocation: sourceLocation)
        kill(agent.pid, SIGKILL)
        agent.process.waitUntilExit()
    }
}

/// Runs the agent of `scratch` for 3 s and stops it with SIGTERM: it must exit 0.
func runToAGracefulStop(_ scratch: AgentScratch, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let last = try AgentChild(scratch, stderr: .nullDevice)
    try await Task.sleep(for: .milliseconds(3000))
    #expect(await last.terminate(within: 60) == .exited(0), sourceLocation: sourceLocation)
}

/// What a kill test reads back of one host's usage: the events a consumer or broker received and
/// the outbox's pending ones, each once by event id. A copy of an event (a resend) must be the same
/// event; together they must tile time from the agent's first baseline, with no dead letters.
struct DeliveredUsage {
    private(set) var events: [String: UsageEvent] = [:]
    /// Events received more than once (counted per extra copy).
    private(set) var copies = 0
    /// Distinct events the consumer or broker received.
    private(set) var delivered = 0
    private let decoder = JSONDecoder()

    /// One event the consumer or broker received.
    mutating func receive(_ payload: Data, sourceLocation: SourceLocation = #_sourceLocation) throws -> UsageEvent {
        let event = try decoder.decode(UsageEvent.self, from: payload)
        if let earlier = events[event.eventID] {
            #expect(earlier == event, "event \(event.eventID) was sent again with other content", sourceLocation: sourceLocation)
            copies += 1
        } else {
            delivered += 1
        }
        events[event.eventID] = event
        return event
    }

    /// Adds the outbox's pending events; one also received must be the same event.
    mutating func addPending(_ database: AgentDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for pending in try database.events() {
            let event = try decoder.decode(UsageEvent.self, from: pending.payload)
            if let earlier = events[event.eventID] { #expect(earlier == event, sourceLocation: sourceLocation) }
            events[event.eventID] = event
        }
    }

    /// Nothing missing: from the first baseline to the open period, the periods tile time; and
    /// nothing was dead-lettered. Returns how many events there are.
    @discardableResult
    func expectTiling(_ database: AgentDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        let ordered = events.values.sorted { $0.period.start < $1.period.start }
        let baseline = try #require(try database.baselines().first, sourceLocation: sourceLocation)
        #expect(ordered.first?.period.start == baseline.wallNanos / 1_000_000_000, sourceLocation: sourceLocation)
        for (earlier, later) in zip(ordered, ordered.dropFirst()) {
            #expect(later.period.start == earlier.period.end, "\(earlier.period) then \(later.period)", sourceLocation: sourceLocation)
        }
        #expect(try database.deadLetters().isEmpty, sourceLocation: sourceLocation)
        return ordered.count
    }
}
