import Foundation
import Outbox
import Probes
import TestSupport
import Testing
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 of a real `hostmeter run` at random moments, many times over: afterwards the events it
/// delivered (to its file sink) and those still in its outbox must tile time with no overlap and
/// no gap, and hold exactly the CPU time the kernel's counter moved by.
@Suite(.serialized) struct KillTests {
    struct StoredEvent: Decodable {
        let event_id: String
        let period: Period
        let metrics: UsageMetrics
    }

    @Test func killNineLosesAndDuplicatesNothing() async throws {
        let scratch = try AgentScratch(prefix: "hostmeter-kill")
        defer { scratch.remove() }
        try scratch.writeConfig(hostID: "kill-test", logLevel: "warning")

        let sampler = HostSampler(configuration: HostSamplerConfiguration(collectors: [.cpu]))
        func hostCPU() throws -> (busy: UInt64, wall: Double, cpus: Int) {
            let stat = try #require(sampler.sample().cpu)
            return (stat.total.busy * UInt64(1_000_000_000 / stat.userHZ), Date().timeIntervalSince1970, stat.cpuCount)
        }

        var random = SystemRandomNumberGenerator()
        let kills = 22
        let before = try hostCPU()
        for round in 0..<kills {
            let agent = try AgentChild(scratch, stderr: .nullDevice)
            // Half the kills land just after a second boundary, when the agent samples and
            // commits; the others anywhere.
            try await Task.sleep(for: .milliseconds(Int.random(in: 1100...2200, using: &random)))
            if round.isMultiple(of: 2) {
                let now = Date().timeIntervalSince1970
                let toBoundary = (now.rounded(.down) + 1 - now) + Double.random(in: 0...0.012, using: &random)
                try await Task.sleep(for: .milliseconds(Int(toBoundary * 1000)))
            }
            #expect(agent.isRunning, "agent died by itself in round \(round)")
            kill(agent.pid, SIGKILL)
            agent.process.waitUntilExit()
            #expect(agent.process.terminationReason == .uncaughtSignal)
            // Sometimes the agent stays down for a while: that time is billed after the restart.
            if Int.random(in: 0..<4, using: &random) == 0 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...2500, using: &random)))
            }
        }
        // A last run, stopped the polite way.
        let last = try AgentChild(scratch, stderr: .nullDevice)
        try await Task.sleep(for: .milliseconds(2500))
        #expect(await last.terminate(within: 60) == .exited(0), "SIGTERM should exit 0")
        let after = try hostCPU()

        let database = try AgentDatabase.open(path: scratch.databaseFile.path)
        let decoder = JSONDecoder()
        // Events are either delivered (the default file sink) or still pending in the outbox. A
        // kill between the sink's fsync and the outbox's acknowledgement delivers a batch twice:
        // the same bytes, which a consumer dedupes by event_id.
        let delivered = try String(contentsOf: scratch.eventsFile, encoding: .utf8)
            .split(separator: "\n").map { Data($0.utf8) }
        let pending = try database.events().map(\.payload)
        var payloads: [String: Data] = [:]
        for payload in delivered + pending {
            let event = try decoder.decode(StoredEvent.self, from: payload)
            if let earlier = payloads[event.event_id] {
                #expect(earlier == payload, "event \(event.event_id) delivered twice with different content")
            }
            payloads[event.event_id] = payload
        }
        let duplicates = delivered.count + pending.count - payloads.count
        let events = try payloads.values.map { try decoder.decode(StoredEvent.self, from: $0) }
            .sorted { $0.period.start < $1.period.start }
        let baselines = try database.baselines()
        let gaps = try database.gaps()
        let checkpointRecord = try #require(try database.checkpoints()["kill-test"])
        let checkpoint = try decoder.decode(MeterCheckpoint.self, from: checkpointRecord.state)

        // One baseline (the first start); every restart resumed from the checkpoint.
        #expect(baselines.count == 1)
        #expect(gaps.filter { $0.reason == "reboot" }.isEmpty)
        let baseline = try #require(baselines.first)
        let baselineCounters = try decoder.decode([String: UInt64].self, from: baseline.counters)

        // Periods tile time: no overlap, no gap, from the first sample to the open period.
        #expect(events.count >= kills)
        #expect(events.first?.period.start == baseline.wallNanos / 1_000_000_000)
        for (earlier, later) in zip(events, events.dropFirst()) {
            #expect(later.period.start == earlier.period.end, "\(earlier.period) then \(later.period)")
        }
        #expect(checkpoint.period.start == events.last?.period.end)
        for event in events {
            #expect(event.event_id == UsageEvent.eventID(hostID: "kill-test", instanceID: "kill-test", period: event.period))
        }

        // Conservation, exactly: billed + carried + open = the counter's movement since the baseline.
        let cpuKey = "cpu_ns:cpu"
        let first = try #require(baselineCounters[cpuKey])
        let latest = try #require(checkpoint.counters[cpuKey]?.value)
        let open = checkpoint.period.usage["cpu_ns"] ?? 0
        let billed = events.reduce(Int64(0)) { $0 + $1.metrics.cpuSeconds }
        #expect(UInt64(billed) * 1_000_000_000 + checkpoint.cpu_carry_ns + open == latest - first)
        let largestError = abs(Double(billed) - Double(latest - first - open) / 1e9)
        #expect(largestError < 1)

        // The agent's first and last counters are the kernel's, inside the test's own two reads, and
        // the CPU time outside them fits in the few moments before the first and after the last sample.
        #expect(before.busy <= first && latest <= after.busy)
        let edgeSeconds = (Double(baseline.wallNanos) / 1e9 - before.wall) + (after.wall - Double(checkpoint.last_wall_ns) / 1e9)
        let outside = Double((after.busy - before.busy) - (latest - first)) / 1e9
        #expect(outside <= edgeSeconds * Double(after.cpus) + 0.05, "outside \(outside) s, edges \(edgeSeconds) s")
        print(
            "kill test: kills=\(kills) events=\(events.count) duplicate_deliveries=\(duplicates) "
                + "billed_cpu_seconds=\(billed) largest_conservation_error=\(largestError)")
    }
}
