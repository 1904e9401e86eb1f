import ArgumentParser
import Foundation
import Shipping

/// What a billing consumer sees from a fleet: requests and events per second around a period
/// boundary, and after an outage ends, with pacing off and on.
///
/// Each host is simulated with the shipper's own pacing code: its offset from `FleetPacing`, its
/// circuit breaker (`CircuitBreaker`, jittered when pacing is on), its retry waits (`RetryPolicy`)
/// and its drain cap (`DrainRate`). Time is simulated, so 10,000 hosts and a 10-minute outage take
/// a second. Pacing off is the agent with `sink.spread_seconds: 0`, `sink.max_events_per_second: 0`
/// and no breaker jitter: every host sends as soon as its period closes (within the quarter second
/// its sample takes) and drains its backlog as fast as the consumer answers.
struct FleetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "A fleet's load on its consumer at a period boundary and after an outage, pacing off and on.")

    @Option(help: "Hosts in the fleet.")
    var hosts = 10_000

    @Option(help: "Events each host makes per period (its VMs and itself).")
    var eventsPerPeriod = 11

    @Option(help: "The period, seconds (interval_seconds).")
    var interval = 30

    @Option(help: "sink.spread_seconds with pacing on.")
    var spread = 30

    @Option(help: "sink.max_events_per_second with pacing on.")
    var maxEventsPerSecond = 2000

    @Option(help: "sink.batch_max_events.")
    var batch = 500

    @Option(help: "How long the consumer is down, seconds.")
    var outageSeconds = 600

    @Option(help: "circuit_breaker.failure_threshold.")
    var failureThreshold = 5

    @Option(help: "circuit_breaker.open_seconds.")
    var openSeconds = 30.0

    @Option(help: "retry.base_seconds.")
    var retryBase = 1.0

    @Option(help: "retry.cap_seconds.")
    var retryCap = 300.0

    @Option(help: "Seconds one request takes at the consumer.")
    var requestSeconds = 0.02

    @Option(help: "Seed of the simulation's random choices.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (1...1_000_000).contains(hosts), (1...100_000).contains(eventsPerPeriod), (1...3600).contains(interval),
            (0...3600).contains(spread), (0...1_000_000).contains(maxEventsPerSecond), (1...100_000).contains(batch),
            (0...86_400).contains(outageSeconds), (1...1000).contains(failureThreshold), openSeconds > 0, retryBase > 0,
            retryCap >= retryBase, requestSeconds > 0
        else { throw ValidationError("settings out of range") }
    }

    struct Load: Encodable {
        let peakEventsPerSecond: Int
        let meanEventsPerSecond: Double
        let peakOverMean: Double
        let peakRequestsPerSecond: Int
        let seconds: Double
        let eventsPerSecond: [Int]

        enum CodingKeys: String, CodingKey {
            case peakEventsPerSecond = "peak_events_per_second"
            case meanEventsPerSecond = "mean_events_per_second"
            case peakOverMean = "peak_over_mean"
            case peakRequestsPerSecond = "peak_requests_per_second"
            case seconds
            case eventsPerSecond = "events_per_second"
        }
    }

    struct Scenario: Encodable {
        let off: Load
        let on: Load
    }

    struct Report: Encodable {
        let benchmark = "fleet"
        let hosts: Int
        let eventsPerPeriod: Int
        let intervalSeconds: Int
        let spreadSeconds: Int
        let maxEventsPerSecondPerHost: Int
        let outageSeconds: Int
        let boundary: Scenario
        let afterOutage: Scenario
        let note = "simulated time; each host runs FleetPacing, CircuitBreaker, RetryPolicy and DrainRate as the shipper does"

        enum CodingKeys: String, CodingKey {
            case benchmark, hosts, boundary, note
            case eventsPerPeriod = "events_per_period"
            case intervalSeconds = "interval_seconds"
            case spreadSeconds = "spread_seconds"
            case maxEventsPerSecondPerHost = "max_events_per_second_per_host"
            case outageSeconds = "outage_seconds"
            case afterOutage = "after_outage"
        }
    }

    /// The consumer's view: what arrived in each second.
    struct Arrivals {
        var events: [Int: Int] = [:]
        var requests: [Int: Int] = [:]

        mutating func record(at time: Double, events count: Int) {
            let second = Int(time.rounded(.down))
            events[second, default: 0] += count
            requests[second, default: 0] += 1
        }

        /// From `start` to the last second anything arrived; the mean over `seconds` (at least
        /// the span of arrivals).
        func load(from start: Int, over seconds: Int? = nil) -> Load {
            let last = max(events.keys.max() ?? start, start)
            let span = max(seconds ?? 0, last - start + 1)
            let series = (start..<(start + span)).map { events[$0] ?? 0 }
            let total = series.reduce(0, +)
            let mean = Double(total) / Double(span)
            let peak = series.max() ?? 0
            return Load(
                peakEventsPerSecond: peak, meanEventsPerSecond: (mean * 10).rounded() / 10,
                peakOverMean: mean > 0 ? (Double(peak) / mean * 100).rounded() / 100 : 0,
                peakRequestsPerSecond: requests.values.max() ?? 0, seconds: Double(span),
                eventsPerSecond: Array(series.prefix(120)))
        }
    }

    func run() throws {
        let report = Report(
            hosts: hosts, eventsPerPeriod: eventsPerPeriod, intervalSeconds: interval, spreadSeconds: spread,
            maxEventsPerSecondPerHost: maxEventsPerSecond, outageSeconds: outageSeconds,
            boundary: Scenario(off: boundary(paced: false), on: boundary(paced: true)),
            afterOutage: Scenario(off: outage(paced: false), on: outage(paced: true)))
        try printJSON(report)
    }

    func hostID(_ index: Int) -> String { "host-\(index)" }

    /// A period ends at 0; each host sends its events once its hold is over.
    func boundary(paced: Bool) -> Load {
        var random = SeededRandom(seed: seed)
        var arrivals = Arrivals()
        let spreadSeconds = Double(min(spread, interval))
        for host in 0..<hosts {
            // The sample that closes the period takes a moment; then the shipper is woken.
            let closed = Double.random(in: 0..<0.25, using: &random)
            let hold = paced ? FleetPacing.offset(hostID: hostID(host), spreadSeconds: spreadSeconds) : 0
            arrivals.record(at: max(closed, hold), events: eventsPerPeriod)
        }
        return arrivals.load(from: 0, over: interval)
    }

    /// The consumer is down from 0 to `outageSeconds`; every host's attempts fail until then, then
    /// it drains what piled up.
    func outage(paced: Bool) -> Load {
        var random = SeededRandom(seed: seed &+ 1)
        var arrivals = Arrivals()
        let end = Double(outageSeconds)
        let retry = RetryPolicy(baseSeconds: retryBase, capSeconds: retryCap)
        let backlog = eventsPerPeriod * max(1, outageSeconds / interval)
        let spreadSeconds = Double(min(spread, interval))
        for host in 0..<hosts {
            var breaker = CircuitBreaker(failureThreshold: failureThreshold, openSeconds: openSeconds)
            var time = paced ? FleetPacing.offset(hostID: hostID(host), spreadSeconds: spreadSeconds) : Double.random(
                in: 0..<0.25, using: &random)
            var attempt = 0
            var rounds = 0
            while time < end, rounds < 100_000 {
                rounds += 1
                _ = breaker.allowsRequest(now: time)
                breaker.recordFailure(now: time + requestSeconds, jitter: paced ? Double.random(in: 0..<1, using: &random) : 0.5)
                let retryAt = time + requestSeconds + retry.delay(attempt: attempt, retryAfter: nil, using: &random)
                attempt += 1
                time = max(retryAt, breaker.blockedUntil(now: retryAt) ?? retryAt)
            }
            var rate = paced && maxEventsPerSecond > 0
                ? DrainRate(perSecond: Double(maxEventsPerSecond), burst: Double(max(batch, maxEventsPerSecond))) : nil
            var remaining = backlog
            rounds = 0
            while remaining > 0, rounds < 1_000_000 {
                rounds += 1
                if let wait = rate?.wait(now: time), wait > 0 {
                    time += wait
                    continue
                }
                let count = min(batch, remaining)
                rate?.spend(count, now: time)
                arrivals.record(at: time, events: count)
                remaining -= count
                time += requestSeconds
            }
        }
        return arrivals.load(from: outageSeconds)
    }
}

/// SplitMix64: the simulation's choices, reproducible from `--seed`.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
