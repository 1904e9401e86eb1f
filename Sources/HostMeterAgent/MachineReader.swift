import Foundation
public import GPU
public import Metering
public import Probes

/// How long one reader of the machine took in a sample and whether it delivered: exported per
/// collector as `hostmeter_collector_duration_seconds` and `hostmeter_collector_success`, the way
/// node_exporter exports `node_scrape_collector_duration_seconds` and `_success`.
public struct CollectorReport: Sendable, Equatable {
    /// The host collector's name (`cpu`, `memory`, …), `gpu` or `instances`.
    public var collector: String
    public var nanoseconds: UInt64
    public var succeeded: Bool

    public init(collector: String, nanoseconds: UInt64, succeeded: Bool) {
        self.collector = collector
        self.nanoseconds = nanoseconds
        self.succeeded = succeeded
    }
}

/// The instances as probed with one sample.
public struct InstanceRound: Sendable {
    /// What the engine meters.
    public var observations: [InstanceObservation]
    /// What the API shows.
    public var statuses: [InstanceStatus]
}

/// Everything read from the machine for one sample.
public struct MachineSample: Sendable {
    public var host: HostSample
    /// nil when no GPU library is loaded.
    public var gpus: GPUSnapshot?
    /// nil when the instances were not probed with this sample (not due yet, or a manifest still
    /// being read): the engine then leaves them as they are.
    public var instances: InstanceRound?
    /// One report per reader that ran, in the order they ran.
    public var reports: [CollectorReport]
    /// Manifest problems known to the registry (refused files), for /health.
    public var manifestProblems: Int
    /// Time taken by all readers together.
    public var durationNanos: UInt64
}

/// Reads the machine once per sample: the host collectors, then the GPUs, then (once per slot of
/// `instance_sample_seconds`) every registered instance. Each reader is timed and its success
/// reported the same way; a failing reader never keeps the others from running.
public struct MachineReader: Sendable {
    public let host: HostSampler
    public let gpus: GPUSampler?
    public private(set) var instances: InstanceSampling?
    /// Instances are probed on the first sample of each slot of this many seconds.
    public let instanceSampleSeconds: Int
    private var lastInstanceSlot: Int64?

    public init(host: HostSampler, gpus: GPUSampler?, instances: InstanceSampling?, instanceSampleSeconds: Int) {
        self.host = host
        self.gpus = gpus
        self.instances = instances
        self.instanceSampleSeconds = max(1, instanceSampleSeconds)
    }

    public mutating func read() -> MachineSample {
        let started = HostClock.monotonicNanos()
        let hostSample = host.sample()
        let failed = Set(hostSample.failures.map(\.collector))
        var reports = hostSample.timings.map {
            CollectorReport(collector: $0.collector.rawValue, nanoseconds: $0.nanoseconds, succeeded: !failed.contains($0.collector))
        }

        var gpuSnapshot: GPUSnapshot?
        if let gpus {
            let (snapshot, report) = Self.timed("gpu") { () -> (GPUSnapshot, Bool) in
                let snapshot = gpus.sample()
                return (snapshot, snapshot.error == nil)
            }
            gpuSnapshot = snapshot
            reports.append(report)
        }

        var round: InstanceRound?
        let slot = hostSample.time.wallNanos / 1_000_000_000 / Int64(instanceSampleSeconds)
        if var sampling = instances, slot != lastInstanceSlot {
            let (observed, report) = Self.timed("instances") { () -> (InstanceRound?, Bool) in
                let observed = sampling.observe(
                    time: hostSample.time, bootID: hostSample.bootID, hostMemoryTotalBytes: hostSample.memory?.totalBytes,
                    gpus: gpuSnapshot)
                return (observed.map { InstanceRound(observations: $0.observations, statuses: $0.statuses) }, observed != nil)
            }
            instances = sampling
            reports.append(report)
            round = observed
            // Not observed (a new manifest still being read): tried again with the next sample.
            if observed != nil { lastInstanceSlot = slot }
        }
        return MachineSample(
            host: hostSample, gpus: gpuSnapshot, instances: round, reports: reports,
            manifestProblems: instances?.registry.problems.count ?? 0,
            durationNanos: HostClock.monotonicNanos() - started)
    }

    private static func timed<T>(_ collector: String, _ body: () -> (T, Bool)) -> (T, CollectorReport) {
        let start = HostClock.monotonicNanos()
        let (value, succeeded) = body()
        return (value, CollectorReport(collector: collector, nanoseconds: HostClock.monotonicNanos() - start, succeeded: succeeded))
    }
}
