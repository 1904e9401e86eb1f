/// GPU utilization integrated over the samples of NVML's buffer that are new since the last look.
///
/// NVML keeps a ring of utilization samples per GPU; each holds the percent of its sample period
/// (1/6 s to 1 s depending on the product) during which a kernel ran, stamped with the CPU time in
/// microseconds at which the period ended. So sample i describes the span (t[i-1], t[i]], and the
/// busy time it reports is value × that span. Integrating every sample exactly once gives busy
/// time over the whole interval between two looks, not one instantaneous reading.
///
/// Pure and total: which samples count and how much is decided here, from the samples and the last
/// timestamp already counted, so it is tested with tables.
public struct UtilizationWindow: Sendable, Equatable {
    /// Σ value/100 × span over the counted samples, nanoseconds.
    public var busyNanoseconds: UInt64
    /// Σ span over the counted samples, nanoseconds: the part of the interval the samples describe.
    public var coveredNanoseconds: UInt64
    /// The newest timestamp counted (microseconds): the next look's `lastSeen`. The given
    /// `lastSeen` when there was nothing new; nil when there was neither.
    public var lastSeenMicros: UInt64?
    /// How many samples were counted.
    public var sampleCount: Int

    public init(busyNanoseconds: UInt64, coveredNanoseconds: UInt64, lastSeenMicros: UInt64?, sampleCount: Int) {
        self.busyNanoseconds = busyNanoseconds
        self.coveredNanoseconds = coveredNanoseconds
        self.lastSeenMicros = lastSeenMicros
        self.sampleCount = sampleCount
    }

    /// Busy time over covered time, in percent; nil when no sample was counted.
    public var percent: Double? {
        coveredNanoseconds > 0 ? Double(busyNanoseconds) * 100 / Double(coveredNanoseconds) : nil
    }

    /// Integrates `samples`, taking only those newer than `lastSeen`.
    ///
    /// - Samples at or before `lastSeen` were counted by an earlier look (a library that returns
    ///   its whole ring again, or the ring's older half after it wrapped): skipped, never counted twice.
    /// - The ring is returned in ring order, which after a wrap is not time order: samples are
    ///   sorted by timestamp first; a repeated timestamp counts once.
    /// - A sample's span is the time since the previous counted sample (or `lastSeen`), at most
    ///   `maximumSpanMicros`: a longer hole means the ring overwrote samples before we read them,
    ///   and usage in the unknown part is not billed rather than guessed.
    /// - With no `lastSeen` (the first look at a GPU) the oldest sample only marks where the
    ///   window starts: what came before it is unknown.
    /// - Values are clamped to 0…100, so a glitching driver can never bill more than the span.
    ///
    /// Integer percent values over spans under 2^53/1000 µs give exact busy nanoseconds.
    public static func integrate(
        _ samples: [UtilizationSample], after lastSeen: UInt64?, maximumSpanMicros: UInt64
    ) -> UtilizationWindow {
        let fresh = samples.filter { sample in lastSeen.map { sample.timestampMicros > $0 } ?? true }
            .sorted { $0.timestampMicros < $1.timestampMicros }
        var window = UtilizationWindow(
            busyNanoseconds: 0, coveredNanoseconds: 0, lastSeenMicros: lastSeen, sampleCount: 0)
        var previous = lastSeen
        for sample in fresh {
            guard let start = previous else {
                previous = sample.timestampMicros
                window.lastSeenMicros = sample.timestampMicros
                continue
            }
            guard sample.timestampMicros > start else { continue }
            let spanMicros = min(sample.timestampMicros - start, maximumSpanMicros)
            let percent = sample.value.isNaN ? 0 : min(100, max(0, sample.value))
            // percent × µs × 1000 / 100 = percent × µs × 10 nanoseconds.
            let busy = UInt64((percent * Double(spanMicros) * 10).rounded())
            window.busyNanoseconds &+= busy
            window.coveredNanoseconds &+= spanMicros &* 1000
            window.sampleCount += 1
            window.lastSeenMicros = sample.timestampMicros
            previous = sample.timestampMicros
        }
        return window
    }
}

/// One entry of NVML's utilization sample buffer.
public struct UtilizationSample: Sendable, Equatable {
    /// CPU time at the end of the sample period, microseconds.
    public var timestampMicros: UInt64
    /// Percent of the sample period the GPU was busy, as NVML gave it.
    public var value: Double

    public init(timestampMicros: UInt64, value: Double) {
        self.timestampMicros = timestampMicros
        self.value = value
    }
}
