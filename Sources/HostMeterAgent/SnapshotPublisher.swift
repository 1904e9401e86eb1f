import Foundation
import GPU
import Metering
public import Outbox
import Probes
public import RuntimeState
import UsageModel

/// Turns what the sampler just did into the snapshot the API serves and the metrics it counts.
///
/// All encoding happens here, once per sample, so API requests only copy bytes.
public struct SnapshotPublisher: Sendable {
    let state: AgentState
    let metrics: AgentMetrics
    private var previous: HostSample?
    /// The instances' views as of their latest probe: encoding 1,000 of them costs tens of
    /// milliseconds, so they are rebuilt only when the instances were probed.
    private var instanceViews: [InstanceView] = []

    public init(state: AgentState, metrics: AgentMetrics) {
        self.state = state
        self.metrics = metrics
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }()

    /// Publishes one sample: what was read, what was stored (a step, nil for a sample without a
    /// boot ID, or the commit's error), the outbox after it, and the checkpoints in `recorder`.
    public mutating func publish(
        _ machine: MachineSample, stored: Result<RecordedStep?, OutboxError>, outbox: OutboxStats?,
        recorder: MeteringRecorder
    ) {
        let sample = machine.host
        let gpus = machine.gpus
        let durationNanos = machine.durationNanos
        let step = try? stored.get()
        let storeError: OutboxError? = if case .failure(let error) = stored { error } else { nil }
        let rates = previous.flatMap { HostRates(from: $0, to: sample) }
        previous = sample

        var events: [String: Int] = [:]
        for event in step?.events ?? [] { events[event.eventType, default: 0] += 1 }
        metrics.recordSample(
            wallNanos: sample.time.wallNanos, failures: sample.failures.map(\.collector.rawValue),
            durationNanos: durationNanos, events: events, periods: step?.events.count ?? 0,
            gaps: step?.gaps.map(\.reason.rawValue) ?? [],
            collectors: machine.reports.map { (name: $0.collector, nanoseconds: $0.nanoseconds, succeeded: $0.succeeded) })
        if storeError != nil { metrics.recordStoreFailure() }

        let identity = recorder.identity
        let meterState = recorder.states[identity.instanceID]
        let periodSoFar = meterState.flatMap {
            Meter.periodSoFar($0, identity: identity, configuration: recorder.configuration)
        }
        var views: [InstanceView] = []
        views.reserveCapacity(instanceViews.count + 1)
        if recorder.meterHost {
            views.append(
                InstanceView(
                    instanceID: identity.instanceID, userID: identity.userID, orgID: identity.orgID, isHost: true,
                    running: sample.bootID != nil && sample.cpu != nil,
                    gauges: Self.hostGauges(sample, rates: rates, state: meterState), periodSoFar: periodSoFar))
        }
        if let instances = machine.instances?.statuses {
            instanceViews = Self.views(instances, recorder: recorder)
        }
        views += instanceViews
        // Encoded by the first request that asks, not here: most samples are never looked at.
        let hostView = EncodedOnce(HostSampleReport(sample: sample, rates: rates)) { report in
            (try? Self.encoder.encode(report)).map { Array($0) } ?? Array("null".utf8)
        }
        let cpus = sample.cpu.map { max(1, $0.perCPU.count) }
        let gpusView = gpus.map { snapshot in
            EncodedOnce(snapshot.gpus) { gpus in (try? Self.encoder.encode(gpus)).map { Array($0) } ?? Array("[]".utf8) }
        } ?? EncodedOnce(bytes: Array("[]".utf8))
        let gpuGauges = (gpus?.gpus ?? []).map { gpu in
            GPUGauges(
                index: gpu.index, uuid: gpu.uuid ?? "index-\(gpu.index)",
                utilizationRatio: gpu.utilizationPercent.map { $0 / 100 }, memoryUsedBytes: gpu.memoryUsedBytes,
                memoryTotalBytes: gpu.memoryTotalBytes, temperatureCelsius: gpu.temperatureCelsius.map(Double.init),
                powerWatts: gpu.powerWatts)
        }

        state.update { snapshot in
            snapshot.lastSample = SampleStatus(
                wallNanos: sample.time.wallNanos, durationNanos: durationNanos,
                failures: sample.failures)
            snapshot.host = hostView
            snapshot.gpusView = gpusView
            snapshot.gpus = gpuGauges
            snapshot.instances = views
            snapshot.manifestProblems = machine.manifestProblems
            snapshot.filesystemUsedRatio = (sample.filesystems ?? []).map {
                ($0.mountPoint, $0.space.usedPercent / 100)
            }
            snapshot.load1PerCPU = sample.load.flatMap { load in cpus.map { load.load1 / Double($0) } }
            if let outbox { snapshot.outbox = outbox }
            if let storeError {
                snapshot.outboxFull = storeError.isFull
                snapshot.storeError = "\(storeError)"
            } else {
                snapshot.outboxFull = false
                snapshot.storeError = nil
            }
        }
    }

    /// The views of the instances as just probed, with what their open periods would bill now.
    static func views(_ instances: [InstanceStatus], recorder: MeteringRecorder) -> [InstanceView] {
        var views: [InstanceView] = []
        views.reserveCapacity(instances.count)
        for instance in instances {
            let id = instance.identity.instanceID
            let state = recorder.states[id]
            var gauges = instance.gauges
            gauges.periodCPUSeconds = state.map { Double($0.openUsage(.cpuNanoseconds)) / 1e9 }
            views.append(
                InstanceView(
                    instanceID: id, userID: instance.identity.userID, orgID: instance.identity.orgID, isHost: false,
                    running: instance.running, gauges: gauges,
                    periodSoFar: state.flatMap {
                        Meter.periodSoFar($0, identity: instance.identity, configuration: recorder.configuration)
                    },
                    missing: instance.missing))
        }
        return views
    }

    static func hostGauges(_ sample: HostSample, rates: HostRates?, state: MeterState?) -> InstanceGauges {
        InstanceGauges(
            cpuPercent: rates?.cpu?.busy, memoryUsedBytes: sample.memory?.usedBytes,
            memoryPercent: sample.memory?.usedPercent,
            networkEgressBytesPerSecond: rates.map { $0.interfaces.reduce(0) { $0 + $1.txBytesPerSecond } },
            networkIngressBytesPerSecond: rates.map { $0.interfaces.reduce(0) { $0 + $1.rxBytesPerSecond } },
            storageUsedBytes: sample.filesystems.map { $0.reduce(0) { $0 + $1.space.usedBytes } },
            periodCPUSeconds: state.map { Double($0.openUsage(.cpuNanoseconds)) / 1e9 })
    }
}
