import AgentAPI
import Foundation
import GPU
import Metering
import Outbox
import Probes
import UsageModel

/// Turns what the sampler just did into the snapshot the API serves and the metrics it counts.
///
/// All encoding happens here, once per sample, so API requests only copy bytes.
struct SnapshotPublisher {
    let state: AgentState
    let metrics: AgentMetrics
    private var previous: HostSample?
    /// The instances' views as of their latest probe: encoding 1,000 of them costs tens of
    /// milliseconds, so they are rebuilt only when the instances were probed.
    private var instanceViews: [InstanceView] = []

    init(state: AgentState, metrics: AgentMetrics) {
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

    /// Publishes one sample. `step` is what was stored (nil: nothing, or the store failed with
    /// `storeError`); `recorder` holds the checkpoints after it.
    mutating func publish(
        _ sample: HostSample, gpus: GPUSnapshot?, durationNanos: UInt64, step: RecordedStep?, storeError: OutboxError?,
        recorder: MeteringRecorder, outbox: OutboxStats?, instances: [InstanceStatus]? = nil, manifestProblems: Int = 0
    ) {
        let rates = previous.flatMap { HostRates(from: $0, to: sample) }
        previous = sample

        var events: [String: Int] = [:]
        for event in step?.events ?? [] { events[event.eventType, default: 0] += 1 }
        metrics.recordSample(
            sample, durationNanos: durationNanos, events: events, periods: step?.events.count ?? 0,
            gaps: step?.gaps.map(\.reason.rawValue) ?? [])
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
        if let instances {
            instanceViews = Self.views(instances, recorder: recorder)
        }
        views += instanceViews
        let hostJSON = (try? Self.encoder.encode(HostSampleReport(sample: sample, rates: rates))).map { Array($0) }
        let cpus = sample.cpu.map { max(1, $0.perCPU.count) }
        let gpusJSON = gpus.flatMap { try? Self.encoder.encode($0.gpus) }.map { Array($0) } ?? Array("[]".utf8)
        let gpuGauges = (gpus?.gpus ?? []).map { gpu in
            GPUGauges(
                index: gpu.index, uuid: gpu.uuid ?? "index-\(gpu.index)",
                utilizationRatio: gpu.utilizationPercent.map { $0 / 100 }, memoryUsedBytes: gpu.memoryUsedBytes,
                memoryTotalBytes: gpu.memoryTotalBytes, temperatureCelsius: gpu.temperatureCelsius.map(Double.init),
                powerWatts: gpu.powerWatts)
        }

        state.update { snapshot in
            snapshot.lastSample = SampleStatus(
                wallNanos: sample.time.wallNanos, durationNanos: durationNanos, failures: sample.failures)
            snapshot.hostJSON = hostJSON
            snapshot.gpusJSON = gpusJSON
            snapshot.gpus = gpuGauges
            snapshot.instances = views
            snapshot.manifestProblems = manifestProblems
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
