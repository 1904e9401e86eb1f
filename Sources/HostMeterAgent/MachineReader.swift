import Foundation
public import GPU
public import Metering
public import Probes
import Synchronization

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
    /// One report per collector that ran (host collectors, `gpu`, `instances`), in the order they ran.
    public var reports: [CollectorReport] = []
    /// Manifest problems known to the registry (refused files), for /health.
    public var manifestProblems = 0
    /// Time taken by all collectors together.
    public var durationNanos: UInt64 = 0

    public init(host: HostSample) { self.host = host }
}

/// Reads the machine once per sample through the one collector contract (`Collector`): the host
/// collectors, then the GPUs, then (once per slot of `instance_sample_seconds`) every registered
/// instance. Each is timed and its success reported the same way; one that fails never keeps the
/// others from running.
public struct MachineReader: Sendable {
    public let host: HostSampler
    let gpus: GPUCollector?
    let instances: InstanceCollector?
    /// Instances are probed on the first sample of each slot of this many seconds.
    public let instanceSampleSeconds: Int
    private var lastInstanceSlot: Int64?

    public init(host: HostSampler, gpus: GPUSampler?, instances: InstanceSampling?, instanceSampleSeconds: Int) {
        self.host = host
        self.gpus = gpus.map(GPUCollector.init)
        self.instances = instances.map(InstanceCollector.init)
        self.instanceSampleSeconds = max(1, instanceSampleSeconds)
    }

    public mutating func read() -> MachineSample {
        let started = HostClock.monotonicNanos()
        var sample = MachineSample(host: host.sample())
        let failed = Dictionary(sample.host.failures.map { ($0.collector, $0.error) }, uniquingKeysWith: { first, _ in first })
        sample.reports = sample.host.timings.map {
            CollectorReport(collector: $0.collector.rawValue, nanoseconds: $0.nanoseconds, error: failed[$0.collector])
        }
        var collectors: [any Collector<MachineSample>] = []
        if let gpus { collectors.append(gpus) }
        let slot = sample.host.time.wallNanos / 1_000_000_000 / Int64(instanceSampleSeconds)
        if let instances, slot != lastInstanceSlot { collectors.append(instances) }
        sample.reports += CollectorRun.run(collectors, into: &sample)
        // Not observed (a new manifest still being read): tried again with the next sample.
        if sample.instances != nil { lastInstanceSlot = slot }
        sample.manifestProblems = instances?.problems ?? 0
        sample.durationNanos = HostClock.monotonicNanos() - started
        return sample
    }
}

/// The GPUs through NVML: a snapshot per sample. Fails (`gpu` success 0) when NVML could not list
/// the GPUs; one GPU's failure is in its reading, not the collector's.
struct GPUCollector: Collector {
    let sampler: GPUSampler

    var name: String { "gpu" }

    func collect(into sample: inout MachineSample) throws(ProbeError) {
        let snapshot = sampler.sample()
        sample.gpus = snapshot
        if let error = snapshot.error { throw .invalid(path: sampler.library.path, reason: error) }
    }
}

/// Every registered instance: re-scans the manifests and probes each instance's cgroup, taps and
/// disks (`InstanceSampling`). Not failing while a manifest is still being read: the round is
/// then left out (no data yet) and tried again with the next sample.
final class InstanceCollector: Collector {
    private let sampling: Mutex<InstanceSampling>

    init(_ sampling: InstanceSampling) { self.sampling = Mutex(sampling) }

    var name: String { "instances" }

    var problems: Int { sampling.withLock { $0.registry.problems.count } }

    func collect(into sample: inout MachineSample) throws(ProbeError) {
        let host = sample.host
        let gpus = sample.gpus
        let observed = sampling.withLock { sampling in
            sampling.observe(
                time: host.time, bootID: host.bootID, hostMemoryTotalBytes: host.memory?.totalBytes, gpus: gpus)
        }
        sample.instances = observed.map { InstanceRound(observations: $0.observations, statuses: $0.statuses) }
    }
}
