public import AgentAPI
import Foundation
public import GPU
public import Logging
import Metering
import Outbox
public import Probes
public import ServiceLifecycle

/// Samples the host on a wall-clock-aligned cadence and records every sample.
///
/// Samples fall on multiples of `sample_seconds`, so the sample that closes a period is taken right
/// after its boundary. A failed write is logged and retried with the next sample; nothing is lost
/// because the checkpoint did not advance.
public struct SamplerService: Service {
    let sampler: HostSampler
    let recorder: MeteringRecorder
    let sampleSeconds: Int
    let logger: Logger
    let state: AgentState
    let metrics: AgentMetrics
    let thresholds: ThresholdRuleBook
    let gpus: GPUSampler?
    let instances: InstanceSampling?
    /// Instances are probed on the first sample of each slot of this many seconds.
    let instanceSampleSeconds: Int
    /// Waits for the next tick: `Task.sleep`, or the sampler's own thread's timer (`Agent.build`).
    let sleep: @Sendable (Duration) async throws -> Void

    public init(
        sampler: HostSampler, recorder: MeteringRecorder, sampleSeconds: Int, logger: Logger, state: AgentState,
        metrics: AgentMetrics, thresholds: ThresholdRuleBook, gpus: GPUSampler? = nil,
        instances: InstanceSampling? = nil, instanceSampleSeconds: Int? = nil,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.sleep = sleep
        self.instanceSampleSeconds = max(1, instanceSampleSeconds ?? sampleSeconds)
        self.instances = instances
        self.sampler = sampler
        self.recorder = recorder
        self.sampleSeconds = sampleSeconds
        self.logger = logger
        self.state = state
        self.metrics = metrics
        self.thresholds = thresholds
        self.gpus = gpus
    }

    public func run() async throws {
        var recorder = recorder
        var instances = instances
        var lastInstanceSlot: Int64?
        var publisher = SnapshotPublisher(state: state, metrics: metrics)
        var reportedFailures = Set<String>()
        var reportedStoreError: String?
        logger.info("sampler started", metadata: ["sample.seconds": "\(sampleSeconds)"])
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let started = ContinuousClock.now
            let sample = sampler.sample()
            let gpuSnapshot = gpus?.sample()
            // Instances are probed once per slot of instance_sample_seconds (the first sample in it).
            let slot = sample.time.wallNanos / 1_000_000_000 / Int64(instanceSampleSeconds)
            var observed: (observations: [InstanceObservation], statuses: [InstanceStatus])?
            if slot != lastInstanceSlot {
                observed = instances?.observe(
                    time: sample.time, bootID: sample.bootID, hostMemoryTotalBytes: sample.memory?.totalBytes,
                    gpus: gpuSnapshot)
                // Not observed (a new manifest still being read): tried again with the next sample.
                if observed != nil || instances == nil { lastInstanceSlot = slot }
            }
            let elapsed = ContinuousClock.now - started
            let durationNanos = UInt64(elapsed.components.seconds) * 1_000_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000)
            reportFailures(sample, reported: &reportedFailures)
            var recorded: RecordedStep?
            var storeError: OutboxError?
            do {
                recorded = try recorder.record(
                    sample, instances: observed?.observations, gpus: gpuSnapshot?.counters() ?? [], rules: thresholds.effective,
                    gauges: ThresholdGauges.values(sample: sample, gpus: gpuSnapshot, outbox: state.snapshot.outbox))
                if reportedStoreError != nil {
                    logger.notice("metering steps are stored again")
                    reportedStoreError = nil
                }
                if let step = recorded {
                    for event in step.events {
                        logger.debug(
                            "period closed",
                            metadata: [
                                "instance.id": "\(event.instanceID)", "period.start": "\(event.period.start)",
                                "period.end": "\(event.period.end)", "cpu.seconds": "\(event.metrics.cpuSeconds)",
                            ])
                    }
                    for alert in step.thresholdEvents {
                        logger.log(
                            level: alert.state == .firing ? .warning : .notice,
                            "threshold \(alert.state.rawValue)",
                            metadata: [
                                "rule": "\(alert.rule)", "instance.id": "\(alert.instanceID)", "metric": "\(alert.metric)",
                                "value": "\(alert.value)", "threshold": "\(alert.threshold)", "severity": "\(alert.severity)",
                            ])
                    }
                    for gap in step.gaps {
                        logger.warning(
                            "metering gap recorded",
                            metadata: [
                                "instance.id": "\(gap.instanceID)", "gap.reason": "\(gap.reason.rawValue)",
                                "gap.from": "\(gap.from)", "gap.to": "\(gap.to)", "gap.detail": "\(gap.detail)",
                            ])
                    }
                } else {
                    logger.error("sample has no boot ID; not metered")
                }
            } catch {
                storeError = error
                // Logged when it starts or changes, not every sample.
                if reportedStoreError != error.description {
                    logger.error(
                        "cannot store metering step; the usage is kept and stored with a later sample",
                        metadata: ["error": "\(error)"])
                    reportedStoreError = error.description
                }
            }
            let outbox: OutboxStats?
            do {
                outbox = try recorder.database.stats()
            } catch {
                outbox = nil
                logger.debug("cannot read outbox stats", metadata: ["error": "\(error)"])
            }
            publisher.publish(
                sample, gpus: gpuSnapshot, durationNanos: durationNanos, step: recorded, storeError: storeError,
                recorder: recorder, outbox: outbox, instances: observed?.statuses,
                manifestProblems: instances?.registry.problems.count ?? 0)
            try? await cancelWhenGracefulShutdown { [sampleSeconds, sleep] in
                try await sleep(.nanoseconds(Self.nanosToNextTick(sampleSeconds: sampleSeconds)))
            }
        }
        do {
            try recorder.flush()
        } catch {
            logger.warning(
                "cannot write the latest checkpoints; a restart resumes from the previous ones and bills the same usage",
                metadata: ["error": "\(error)"])
        }
        logger.info("sampler stopped")
    }

    /// Logs a collector's failure once when it starts and once when it clears, not every sample.
    private func reportFailures(_ sample: HostSample, reported: inout Set<String>) {
        var current = Set<String>()
        for failure in sample.failures {
            let key = failure.description
            current.insert(key)
            if !reported.contains(key) {
                logger.warning(
                    "collector failed",
                    metadata: ["collector.name": "\(failure.collector.rawValue)", "error": "\(failure.error)"])
            }
        }
        for cleared in reported.subtracting(current) {
            logger.info("collector recovered", metadata: ["error": "\(cleared)"])
        }
        reported = current
    }

    /// Nanoseconds from now to the next wall-clock multiple of `sampleSeconds` (at least 1 ms away).
    public static func nanosToNextTick(sampleSeconds: Int) -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nowNanos = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        let step = Int64(sampleSeconds) * 1_000_000_000
        let next = (nowNanos / step + 1) * step
        return max(next - nowNanos, 1_000_000)
    }
}
