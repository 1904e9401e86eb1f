import Foundation
public import Logging
import Metering
import Outbox
import Probes
public import RuntimeState
public import ServiceLifecycle

/// The sample loop, in one straight line: read the machine → run the metering engine → commit its
/// step → publish what was read and stored.
///
/// Samples fall on multiples of `sample_seconds`, so the sample that closes a period is taken right
/// after its boundary. A failed commit is logged and retried with the next sample; nothing is lost
/// because the checkpoint did not advance. Threshold alerts leave through the outbox only: the
/// Alertmanager notifier reads them from the committed rows.
public struct SamplerService: Service {
    let reader: MachineReader
    let recorder: MeteringRecorder
    let publisher: SnapshotPublisher
    let thresholds: ThresholdRuleBook
    let sampleSeconds: Int
    let logger: Logger
    /// Waits for the next tick: `Task.sleep`, or a park of the sampler's own thread (`Agent.build`).
    let sleep: @Sendable (Duration) async throws -> Void
    /// Ends the current `sleep` early (a graceful shutdown), if the sleep can be ended; without it
    /// the sleep is cancelled through ServiceLifecycle's `cancelWhenGracefulShutdown`, which
    /// starts tasks on the shared pool every time.
    let interrupt: (@Sendable () -> Void)?

    public init(
        reader: MachineReader, recorder: MeteringRecorder, publisher: SnapshotPublisher, thresholds: ThresholdRuleBook,
        sampleSeconds: Int, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        interrupt: (@Sendable () -> Void)? = nil
    ) {
        self.interrupt = interrupt
        self.reader = reader
        self.recorder = recorder
        self.publisher = publisher
        self.thresholds = thresholds
        self.sampleSeconds = sampleSeconds
        self.logger = logger
        self.sleep = sleep
    }

    public func run() async throws {
        var reader = reader
        var recorder = recorder
        var publisher = publisher
        var reportedFailures = Set<String>()
        var reportedStoreError: String?
        // The outbox as the last commit left it: the gauge rules on outbox depth read it.
        var outbox = try? recorder.database.stats()
        logger.info("sampler started", metadata: ["sample.seconds": "\(sampleSeconds)"])
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let sample = reader.read()
            reportFailures(sample.host, reported: &reportedFailures)
            let stored: Result<RecordedStep?, OutboxError>
            do {
                stored = .success(
                    try recorder.record(
                        sample.host, instances: sample.instances?.observations, gpus: sample.gpus?.counters() ?? [],
                        rules: thresholds.effective,
                        gauges: ThresholdGauges.values(sample: sample.host, gpus: sample.gpus, outbox: outbox),
                        readingStats: true))
            } catch {
                stored = .failure(error)
            }
            switch stored {
            case .success(let step):
                if reportedStoreError != nil {
                    logger.notice("metering steps are stored again")
                    reportedStoreError = nil
                }
                if let step {
                    outbox = step.outbox ?? outbox
                    log(step.step)
                } else {
                    outbox = (try? recorder.database.stats()) ?? outbox
                    logger.error("sample has no boot ID; not metered")
                }
            case .failure(let error):
                // The commit was rolled back; the figures shown are what the database holds now.
                outbox = (try? recorder.database.stats()) ?? outbox
                // Logged when it starts or changes, not every sample.
                if reportedStoreError != error.description {
                    logger.error(
                        "cannot store metering step; the usage is kept and stored with a later sample",
                        metadata: ["error": "\(error)"])
                    reportedStoreError = error.description
                }
            }
            publisher.publish(sample, stored: stored, outbox: outbox, recorder: recorder)
            let untilTick = Duration.nanoseconds(Self.nanosToNextTick(sampleSeconds: sampleSeconds))
            if let interrupt {
                try? await withGracefulShutdownHandler {
                    try await sleep(untilTick)
                } onGracefulShutdown: {
                    interrupt()
                }
            } else {
                try? await cancelWhenGracefulShutdown { [sleep] in try await sleep(untilTick) }
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

    /// Logs what a stored step decided: periods (debug), threshold transitions, gaps, instance changes.
    private func log(_ step: MeteringStep) {
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
        for case .removed(let id) in step.transitions {
            logger.info("instance removed; its final period is billed", metadata: ["instance.id": "\(id)"])
        }
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
