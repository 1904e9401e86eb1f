public import UsageModel

/// Settings that decide periods.
public struct MeterConfiguration: Sendable, Equatable {
    public static let intervalRange: ClosedRange<Int64> = 1...3600

    public var hostID: String
    /// Period length; periods are aligned to wall-clock multiples of it.
    public var intervalSeconds: Int64
    /// A counter source not seen for this long is forgotten (a removed interface).
    public var sourceRetentionNanos: UInt64

    public init(hostID: String, intervalSeconds: Int64 = 30, sourceRetentionNanos: UInt64? = nil) {
        precondition(Self.intervalRange.contains(intervalSeconds), "interval_seconds must be 1…3600")
        self.hostID = hostID
        self.intervalSeconds = intervalSeconds
        self.sourceRetentionNanos = sourceRetentionNanos ?? UInt64(max(intervalSeconds * 10, 600)) * 1_000_000_000
    }
}

/// Why usage of an instance is not accounted between two times.
public enum GapReason: String, Sendable, Codable, CaseIterable {
    /// The host rebooted: usage between the last sample of the old boot and the first of the new
    /// one is unknowable, since the counters started again from zero.
    case reboot
    /// One counter went down within a boot (its cgroup or interface was recreated): its usage
    /// between the two samples is not known, so none is billed for it; the others are unaffected.
    case counterReset = "counter_reset"
    /// The instance was not running (its cgroup or an interface was missing): no periods between.
    case instanceStopped = "instance_stopped"
}

/// A recorded hole in an instance's accounting. Never papered over: stored beside the events.
public struct MeteringGap: Sendable, Equatable, Codable {
    public var instanceID: String
    public var reason: GapReason
    /// Unix seconds: for a reboot, where the last period of the old boot ended and where the first
    /// of the new boot starts; for a counter reset, the two samples around it.
    public var from: Int64
    public var to: Int64
    /// The old and new boot IDs, or the counter and its two values.
    public var detail: String
}

/// A fresh start of an instance's counters: its first sample ever, or its first after a reboot.
/// Σ events + the open period = the latest checkpoint's counters − the baseline's, exactly.
public struct MeteringBaseline: Sendable, Equatable, Codable {
    public var instanceID: String
    public var bootID: String
    public var wallNanos: Int64
    public var counters: [String: UInt64]
}

/// What one step of metering produced.
public struct MeterStep: Sendable, Equatable {
    public var state: MeterState
    /// Closed periods, oldest first.
    public var events: [UsageEvent]
    public var gaps: [MeteringGap]
    public var baseline: MeteringBaseline?
}

/// The metering engine: pure, total, and the only place that decides what is billed.
///
/// Periods: an instance's first period starts at its first sample (whole seconds); later ones at
/// wall-clock multiples of the interval. A period closes at the first sample at or past its end
/// boundary, and covers the counter deltas up to that sample: deltas are taken sample to sample, so
/// nothing is counted twice or lost whichever period it lands in.
///
/// Clocks: durations (averages, CPU percent) come from the boot clock, period labels from the wall
/// clock, kept monotonic. If the wall clock steps back, the open period does not close until the
/// wall clock passes its end again, so it absorbs the usage of the repeated seconds; if it steps
/// forward, the open period closes at the latest boundary passed and is longer than one interval.
/// Either way periods never overlap and never run backwards, and usage is kept.
public enum Meter {
    static let nanosPerSecond: UInt64 = 1_000_000_000

    /// Folds one reading into an instance's state, closing every period it completes.
    public static func advance(
        _ state: MeterState?, with reading: InstanceReading, identity: InstanceIdentity,
        configuration: MeterConfiguration
    ) -> MeterStep {
        let wallSecond = floorDivide(reading.time.wallNanos, Int64(nanosPerSecond))
        guard var state else {
            return start(reading, identity: identity, at: wallSecond, carriedFrom: nil, events: [], gaps: [])
        }
        if state.bootID != reading.bootID {
            return reboot(state, reading: reading, identity: identity, configuration: configuration, wallSecond: wallSecond)
        }
        // Same boot: the boot clock cannot go back. A reading that is not newer is stale; ignore it.
        guard reading.time.bootNanos > state.lastBootNanos else {
            return MeterStep(state: state, events: [], gaps: [], baseline: nil)
        }

        var gaps: [MeteringGap] = []
        let elapsedNanos = reading.time.bootNanos - state.lastBootNanos
        let elapsedSeconds = Double(elapsedNanos) / 1e9
        let previousSecond = floorDivide(state.lastWallNanos, Int64(nanosPerSecond))
        for (source, value) in reading.counters {
            let key = source.description
            let generation = reading.generations[source.name]
            if let baseline = state.counters[key] {
                if let generation, let previous = baseline.generation, generation != previous {
                    // The cgroup or interface was recreated (the VM restarted): the new counter
                    // started from zero, so all of it is unbilled usage. What the old one counted
                    // after the previous sample is gone with it: that is the gap.
                    state.period.usage[source.kind, default: 0] &+= value
                    gaps.append(
                        MeteringGap(
                            instanceID: identity.instanceID, reason: .counterReset, from: previousSecond,
                            to: max(previousSecond, wallSecond),
                            detail: "\(key) was recreated (generation \(previous) → \(generation)); counted from zero"))
                } else if value >= baseline.value {
                    state.period.usage[source.kind, default: 0] &+= value - baseline.value
                } else {
                    // The wall clock may have stepped back between the samples: keep from ≤ to.
                    gaps.append(
                        MeteringGap(
                            instanceID: identity.instanceID, reason: .counterReset, from: previousSecond,
                            to: max(previousSecond, wallSecond), detail: "\(key) went from \(baseline.value) to \(value)"))
                }
            }
            state.counters[key] = CounterBaseline(
                value: value, lastSeenBootNanos: reading.time.bootNanos, generation: generation)
        }
        state.counters = state.counters.filter {
            reading.time.bootNanos - $0.value.lastSeenBootNanos <= configuration.sourceRetentionNanos
        }

        if let stoppedAt = state.stoppedAt {
            // Running again: a new period starts now. Counters that survived the stop were billed
            // above from where they were; nothing is stretched across the stopped span.
            let start = max(stoppedAt, wallSecond)
            gaps.append(
                MeteringGap(
                    instanceID: identity.instanceID, reason: .instanceStopped, from: stoppedAt, to: start,
                    detail: "not running from \(stoppedAt) to \(start)"))
            state.stoppedAt = nil
            state.period.start = start
            state.period.spanStartBootNanos = reading.time.bootNanos
            state.lastMemoryUsedBytes = nil
            state.lastMemoryPercent = nil
        } else if reading.assignedGPUs > 0 {
            let (busy, overflow) = UInt64(reading.assignedGPUs).multipliedReportingOverflow(by: elapsedNanos)
            state.period.usage[.gpuBusyNanoseconds, default: 0] &+= overflow ? UInt64.max : busy
        }

        // Gauges: trapezoids between consecutive samples, on the boot clock.
        let memoryPercent = percent(reading.memoryUsedBytes, of: reading.memoryTotalBytes)
        if let before = state.lastMemoryUsedBytes, let after = reading.memoryUsedBytes,
            let percentBefore = state.lastMemoryPercent, let percentAfter = memoryPercent
        {
            state.period.memoryByteSeconds += (Double(before) + Double(after)) / 2 * elapsedSeconds
            state.period.memoryPercentSeconds += (percentBefore + percentAfter) / 2 * elapsedSeconds
            state.period.gaugeSeconds += elapsedSeconds
        }
        if reading.memoryUsedBytes != nil, memoryPercent != nil {
            state.lastMemoryUsedBytes = reading.memoryUsedBytes
            state.lastMemoryPercent = memoryPercent
        }
        if let storage = reading.storageUsedBytes { state.period.storageUsedBytes = storage }
        state.period.cpuCapacity = reading.cpuCapacity
        state.lastWallNanos = reading.time.wallNanos
        state.lastBootNanos = reading.time.bootNanos

        var events: [UsageEvent] = []
        let interval = configuration.intervalSeconds
        let boundary = (floorDivide(state.period.start, interval) + 1) * interval
        if wallSecond >= boundary {
            let end = floorDivide(wallSecond, interval) * interval
            events.append(close(&state, at: end, identity: identity, configuration: configuration, timestamp: wallSecond))
        }
        return MeterStep(state: state, events: events, gaps: gaps, baseline: nil)
    }

    /// A new baseline: nothing is billed for the first sample, since usage needs two.
    private static func start(
        _ reading: InstanceReading, identity: InstanceIdentity, at start: Int64, carriedFrom old: MeterState?,
        events: [UsageEvent], gaps: [MeteringGap]
    ) -> MeterStep {
        var counters: [String: CounterBaseline] = [:]
        for (source, value) in reading.counters {
            counters[source.description] = CounterBaseline(
                value: value, lastSeenBootNanos: reading.time.bootNanos, generation: reading.generations[source.name])
        }
        let memoryPercent = percent(reading.memoryUsedBytes, of: reading.memoryTotalBytes)
        let state = MeterState(
            format: MeterState.format, bootID: reading.bootID, lastWallNanos: reading.time.wallNanos,
            lastBootNanos: reading.time.bootNanos, counters: counters,
            lastMemoryUsedBytes: memoryPercent == nil ? nil : reading.memoryUsedBytes,
            lastMemoryPercent: memoryPercent,
            period: OpenPeriod(
                start: start, spanStartBootNanos: reading.time.bootNanos, cpuCapacity: reading.cpuCapacity,
                storageUsedBytes: reading.storageUsedBytes),
            cpuCarryNanos: old?.cpuCarryNanos ?? 0, gpuCarryNanos: old?.gpuCarryNanos ?? 0)
        let baseline = MeteringBaseline(
            instanceID: identity.instanceID, bootID: reading.bootID, wallNanos: reading.time.wallNanos,
            counters: counters.mapValues(\.value))
        return MeterStep(state: state, events: events, gaps: gaps, baseline: baseline)
    }

    /// The host rebooted since `state`: bill what the old boot's open period accumulated up to its
    /// last sample, record the gap, and start again from the new counters. Carries are kept: they
    /// are usage already measured.
    private static func reboot(
        _ state: MeterState, reading: InstanceReading, identity: InstanceIdentity, configuration: MeterConfiguration,
        wallSecond: Int64
    ) -> MeterStep {
        var old = state
        var events: [UsageEvent] = []
        var lastEnd = old.period.start
        if old.hasOpenPeriod {
            let lastSecond = ceilDivide(old.lastWallNanos, Int64(nanosPerSecond))
            let end = max(lastSecond, old.period.start + 1)
            events.append(
                close(&old, at: end, identity: identity, configuration: configuration,
                      timestamp: max(wallSecond, end)))
            lastEnd = end
        }
        let newStart = max(wallSecond, lastEnd)
        let gap = MeteringGap(
            instanceID: identity.instanceID, reason: .reboot, from: lastEnd, to: newStart,
            detail: "boot \(old.bootID) → \(reading.bootID)")
        return start(reading, identity: identity, at: newStart, carriedFrom: old, events: events, gaps: [gap])
    }

    /// The instance stopped running (its cgroup or an interface is gone): bill the open period up
    /// to its last sample and remember where it ended. Nothing more is billed until it runs again.
    /// An instance already stopped is left as it is.
    public static func suspend(
        _ state: MeterState, identity: InstanceIdentity, configuration: MeterConfiguration, timestamp: Int64
    ) -> MeterStep {
        guard state.stoppedAt == nil else { return MeterStep(state: state, events: [], gaps: [], baseline: nil) }
        var state = state
        var events: [UsageEvent] = []
        var end = state.period.start
        if state.hasOpenPeriod {
            end = max(ceilDivide(state.lastWallNanos, Int64(nanosPerSecond)), state.period.start + 1)
            events.append(
                close(&state, at: end, identity: identity, configuration: configuration, timestamp: max(timestamp, end)))
        }
        state.stoppedAt = end
        return MeterStep(state: state, events: events, gaps: [], baseline: nil)
    }

    /// The instance was removed: its final, partial period up to its last sample (none if it was
    /// not running). Its checkpoint can then be deleted with the event, in one transaction.
    public static func finish(
        _ state: MeterState, identity: InstanceIdentity, configuration: MeterConfiguration, timestamp: Int64
    ) -> [UsageEvent] {
        suspend(state, identity: identity, configuration: configuration, timestamp: timestamp).events
    }

    /// What the open period would bill if it closed at the latest sample: the usage so far, computed
    /// exactly as `advance` will compute it (whole seconds with the carry). nil before a second
    /// sample of the period.
    public static func periodSoFar(
        _ state: MeterState, identity: InstanceIdentity, configuration: MeterConfiguration
    ) -> UsageEvent? {
        let end = ceilDivide(state.lastWallNanos, Int64(nanosPerSecond))
        guard state.hasOpenPeriod, end > state.period.start else { return nil }
        var copy = state
        return close(&copy, at: end, identity: identity, configuration: configuration, timestamp: end)
    }

    /// Closes the open period at `end` and opens the next one there.
    private static func close(
        _ state: inout MeterState, at end: Int64, identity: InstanceIdentity, configuration: MeterConfiguration,
        timestamp: Int64
    ) -> UsageEvent {
        let period = state.period
        let cpuNanos = period.usage[.cpuNanoseconds] ?? 0
        let (cpuSeconds, cpuCarry) = wholeSeconds(cpuNanos, carry: state.cpuCarryNanos)
        let (gpuSeconds, gpuCarry) = wholeSeconds(period.usage[.gpuBusyNanoseconds] ?? 0, carry: state.gpuCarryNanos)
        state.cpuCarryNanos = cpuCarry
        state.gpuCarryNanos = gpuCarry

        let spanSeconds = Double(state.lastBootNanos - period.spanStartBootNanos) / 1e9
        let capacity = period.cpuCapacity
        // The kernel accounts CPU time in ticks, so over a short span the exact ratio can exceed
        // 100 by a tick's worth; the percent is a gauge and is capped, cpu_seconds stays exact.
        let cpuPercent =
            spanSeconds > 0 && capacity > 0 ? min(100, Double(cpuNanos) / 1e9 / (spanSeconds * capacity) * 100) : 0
        let memoryBytes: Double
        let memoryPercent: Double
        if period.gaugeSeconds > 0 {
            memoryBytes = period.memoryByteSeconds / period.gaugeSeconds
            memoryPercent = period.memoryPercentSeconds / period.gaugeSeconds
        } else {
            memoryBytes = Double(state.lastMemoryUsedBytes ?? 0)
            memoryPercent = state.lastMemoryPercent ?? 0
        }
        let metrics = UsageMetrics(
            cpuSeconds: cpuSeconds, cpuPercentAvg: rounded(cpuPercent, places: 3),
            memoryGB: rounded(memoryBytes / 1e9, places: 6), memoryPercent: rounded(memoryPercent, places: 3),
            storageGB: rounded(Double(period.storageUsedBytes ?? 0) / 1e9, places: 6),
            networkEgressMB: Double(period.usage[.egressBytes] ?? 0) / 1e6,
            networkIngressMB: Double(period.usage[.ingressBytes] ?? 0) / 1e6, gpuSeconds: gpuSeconds)
        let event = UsageEvent(
            hostID: configuration.hostID, instanceID: identity.instanceID, userID: identity.userID,
            orgID: identity.orgID, period: Period(start: period.start, end: end), metrics: metrics, timestamp: timestamp)

        state.period = OpenPeriod(
            start: end, spanStartBootNanos: state.lastBootNanos, cpuCapacity: capacity,
            storageUsedBytes: period.storageUsedBytes)
        return event
    }

    /// Whole seconds of `nanos` plus the carried remainder, and the new remainder.
    static func wholeSeconds(_ nanos: UInt64, carry: UInt64) -> (seconds: Int64, carry: UInt64) {
        let total = nanos.addingReportingOverflow(carry)
        // Overflow would need 584 years of CPU time in one period: clamp rather than wrap.
        let value = total.overflow ? UInt64.max : total.partialValue
        return (Int64(value / nanosPerSecond), value % nanosPerSecond)
    }

    static func percent(_ part: UInt64?, of whole: UInt64?) -> Double? {
        guard let part, let whole, whole > 0 else { return nil }
        return Double(part) / Double(whole) * 100
    }

    static func rounded(_ value: Double, places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (value * scale).rounded() / scale
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    static func ceilDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        -floorDivide(-value, divisor)
    }
}
