import Foundation
import Metering
import Probes
public import Prometheus
public import Shipping
import Synchronization
public import UsageModel

/// The agent's own metrics, named `hostmeter_*` with units in the names, each with HELP text.
///
/// Events (samples, periods, deliveries) increment counters and histograms as they happen; gauges
/// are set from the snapshot when /metrics is scraped. Per-instance series are written straight
/// from the snapshot at each scrape rather than registered: swift-prometheus copies a family's
/// whole dictionary to add one series, so registering 8 gauges for each of thousands of instances
/// took seconds and megabytes, while writing them is linear and keeps nothing. They follow the
/// instances metered now.
public final class AgentMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    let sampleDuration: DurationHistogram
    let samples: Counter
    let lastSampleTimestamp: Gauge
    let periodsClosed: Counter
    let storeFailures: Counter
    let outboxPending: Gauge
    let outboxDead: Gauge
    let outboxDeadBytes: Gauge
    let outboxBytes: Gauge
    let outboxMaxBytes: Gauge
    let outboxFull: Gauge
    let shipAttempts: Counter
    let shipDuration: DurationHistogram
    let eventsDelivered: Counter
    let breakerState: Gauge
    let authFailures: Counter
    let healthStatus: Gauge
    let load1PerCPU: Gauge
    let instancesMetered: Gauge
    let instancesNotRunning: Gauge
    let manifestErrors: Gauge
    let logLinesDropped: Counter

    private let perFilesystem = Mutex<[String: Gauge]>([:])
    private let perCollector = Mutex<[String: (duration: Gauge, success: Gauge)]>([:])
    private let perGPU = Mutex<[String: [Gauge]]>([:])

    static let gpuGauges: [(name: String, help: String)] = [
        ("hostmeter_gpu_utilization_ratio", "GPU utilization integrated over the latest sample interval (0 to 1)."),
        ("hostmeter_gpu_memory_used_bytes", "GPU memory in use, bytes."),
        ("hostmeter_gpu_memory_total_bytes", "GPU memory in all, bytes."),
        ("hostmeter_gpu_temperature_celsius", "GPU temperature, degrees Celsius."),
        ("hostmeter_gpu_power_watts", "GPU power draw, watts."),
    ]

    /// The per-instance families, with what each shows of an instance (NaN when not known).
    static let instanceGauges: [(name: String, help: String, value: @Sendable (InstanceView) -> Double?)] = [
        ("hostmeter_instance_cpu_percent", "CPU use of the instance between the last two samples, percent of its CPUs.",
         { $0.gauges.cpuPercent }),
        ("hostmeter_instance_memory_used_bytes", "Memory the instance uses at the latest sample, bytes.",
         { $0.gauges.memoryUsedBytes.map(Double.init) }),
        ("hostmeter_instance_memory_percent", "Memory the instance uses at the latest sample, percent of its memory.",
         { $0.gauges.memoryPercent }),
        ("hostmeter_instance_network_egress_bytes_per_second", "Bytes per second the instance sent between the last two samples.",
         { $0.gauges.networkEgressBytesPerSecond }),
        ("hostmeter_instance_network_ingress_bytes_per_second", "Bytes per second the instance received between the last two samples.",
         { $0.gauges.networkIngressBytesPerSecond }),
        ("hostmeter_instance_period_cpu_seconds", "CPU seconds the instance used so far in the open billing period.",
         { $0.gauges.periodCPUSeconds }),
        ("hostmeter_instance_storage_used_bytes", "Storage the instance uses at the latest sample, bytes.",
         { $0.gauges.storageUsedBytes.map(Double.init) }),
        ("hostmeter_instance_running", "1 when the instance's counters could be read at the latest sample, else 0.",
         { $0.running ? 1 : 0 }),
    ]

    public init(version: String = AgentVersion.current) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        registry.makeGauge(
            descriptor: Self.name("hostmeter_build_info", help: "The running hostmeter's version; always 1."),
            labels: [("version", version)]
        ).set(1.0)
        sampleDuration = registry.makeDurationHistogram(
            descriptor: Self.name(
                "hostmeter_sample_duration_seconds", help: "Time taken by one sample of all collectors, seconds."),
            buckets: [.microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
                      .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250)])
        samples = registry.makeCounter(descriptor: Self.name("hostmeter_samples_total", help: "Samples taken."))
        lastSampleTimestamp = registry.makeGauge(
            descriptor: Self.name("hostmeter_last_sample_timestamp_seconds", help: "Unix time of the latest sample, seconds."))
        periodsClosed = registry.makeCounter(
            descriptor: Self.name("hostmeter_periods_closed_total", help: "Billing periods closed, over all instances."))
        storeFailures = registry.makeCounter(
            descriptor: Self.name("hostmeter_store_failures_total", help: "Metering steps that could not be stored (the usage is kept and billed with a later step)."))
        outboxPending = registry.makeGauge(
            descriptor: Self.name("hostmeter_outbox_pending_events", help: "Events in the outbox not yet delivered."))
        outboxDead = registry.makeGauge(
            descriptor: Self.name("hostmeter_outbox_dead_events", help: "Events the consumer refused for good (dead letters)."))
        outboxDeadBytes = registry.makeGauge(
            descriptor: Self.name("hostmeter_outbox_dead_bytes", help: "Payload bytes of the dead letters (unbilled usage kept under outbox.max_bytes)."))
        outboxBytes = registry.makeGauge(descriptor: Self.name("hostmeter_outbox_bytes", help: "Bytes of the outbox database in use."))
        outboxMaxBytes = registry.makeGauge(
            descriptor: Self.name("hostmeter_outbox_max_bytes", help: "The outbox's bound (outbox.max_bytes), bytes."))
        outboxFull = registry.makeGauge(
            descriptor: Self.name("hostmeter_outbox_full", help: "1 while the outbox is over its bound and new usage is held back, else 0."))
        shipAttempts = registry.makeCounter(descriptor: Self.name("hostmeter_ship_attempts_total", help: "Requests made to the sink."))
        shipDuration = registry.makeDurationHistogram(
            descriptor: Self.name("hostmeter_ship_duration_seconds", help: "Time from sending a batch to the sink's answer, seconds."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                      .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)])
        eventsDelivered = registry.makeCounter(
            descriptor: Self.name("hostmeter_events_delivered_total", help: "Events the sink acknowledged."))
        breakerState = registry.makeGauge(
            descriptor: Self.name("hostmeter_circuit_breaker_state", help: "The sink's circuit breaker: 0 closed, 1 open, 2 half-open."))
        authFailures = registry.makeCounter(
            descriptor: Self.name("hostmeter_api_auth_failures_total", help: "API requests refused for a missing, unknown or insufficient token."))
        healthStatus = registry.makeGauge(
            descriptor: Self.name("hostmeter_health_status", help: "1 when /health answers ok, 0 when degraded."))
        load1PerCPU = registry.makeGauge(
            descriptor: Self.name("hostmeter_host_load1_per_cpu", help: "The host's one-minute load average divided by its CPUs."))
        instancesMetered = registry.makeGauge(
            descriptor: Self.name("hostmeter_instances", help: "Instances registered for metering besides the host (manifest files and the API)."))
        instancesNotRunning = registry.makeGauge(
            descriptor: Self.name("hostmeter_instances_not_running", help: "Registered instances whose cgroup or an interface was missing at the latest sample."))
        manifestErrors = registry.makeGauge(
            descriptor: Self.name("hostmeter_instance_manifest_errors", help: "Manifest files in instances_dir refused at the latest scan."))
        logLinesDropped = registry.makeCounter(
            descriptor: Self.name("hostmeter_log_lines_dropped_total", help: "Log lines that could not be written to stderr (its reader went away)."))
        // Families with labels: registered empty-labelled series would clash, so they appear with
        // their first observation. Pre-create the well-known label values so rates start at 0.
        for collector in CollectorName.allCases {
            _ = collectorErrors(collector.rawValue)
        }
        for reason in ShipFailureReason.allCases {
            _ = shipFailures(reason)
        }
        for type in ["resource_usage", "threshold_alert"] {
            _ = eventsEmitted(type)
        }
        for reason in GapReason.allCases {
            _ = gaps(reason.rawValue)
        }
        _ = eventsDeadLettered
    }

    private func collectorErrors(_ collector: String) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("hostmeter_collector_errors_total", help: "Samples in which a collector failed, by collector."), labels: [("collector", collector)])
    }

    private func shipFailures(_ reason: ShipFailureReason) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("hostmeter_ship_failures_total", help: "Failed or refused requests to the sink, by reason."), labels: [("reason", reason.rawValue)])
    }

    private func eventsEmitted(_ type: String) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("hostmeter_events_emitted_total", help: "Events written to the outbox, by event type."), labels: [("event_type", type)])
    }

    private func gaps(_ reason: String) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("hostmeter_metering_gaps_total", help: "Metering gaps recorded (reboots, counter resets, clock steps), by reason."), labels: [("reason", reason)])
    }

    private var eventsDeadLettered: Counter {
        registry.makeCounter(
            descriptor: Self.name("hostmeter_events_dead_lettered_total", help: "Events moved to the dead letters."))
    }

    /// A family's name and HELP text (units are part of our names already).
    /// A metric name with its help text, as the registry wants it.
    public static func name(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    // MARK: Recording

    /// One sample taken, with what its metering step produced (nil: not stored): the collectors
    /// that failed, the time of the whole sample, events by type, periods closed, gaps by reason,
    /// and each reader of the machine's duration and success.
    public func recordSample(
        wallNanos: Int64, failures: [String], durationNanos: UInt64, events: [String: Int], periods: Int,
        gaps: [String], collectors: [(name: String, nanoseconds: UInt64, succeeded: Bool)] = []
    ) {
        samples.increment()
        sampleDuration.record(.nanoseconds(Int64(clamping: durationNanos)))
        lastSampleTimestamp.set(Double(wallNanos) / 1e9)
        for collector in failures {
            collectorErrors(collector).increment()
        }
        for collector in collectors {
            let gauges = collectorGauges(collector.name)
            gauges.duration.set(Double(collector.nanoseconds) / 1e9)
            gauges.success.set(collector.succeeded ? 1.0 : 0.0)
        }
        if periods > 0 { periodsClosed.increment(by: Int64(periods)) }
        for (type, count) in events where count > 0 {
            eventsEmitted(type).increment(by: Int64(count))
        }
        for reason in gaps {
            self.gaps(reason).increment()
        }
    }

    /// `hostmeter_collector_duration_seconds` and `hostmeter_collector_success` of one collector,
    /// made with its first report (the set of collectors is fixed by the configuration).
    private func collectorGauges(_ collector: String) -> (duration: Gauge, success: Gauge) {
        perCollector.withLock { gauges in
            if let known = gauges[collector] { return known }
            let made = (
                duration: registry.makeGauge(
                    descriptor: Self.name(
                        "hostmeter_collector_duration_seconds",
                        help: "Time the collector took in the latest sample, seconds (host collectors, gpu, instances)."),
                    labels: [("collector", collector)]),
                success: registry.makeGauge(
                    descriptor: Self.name(
                        "hostmeter_collector_success", help: "1 when the collector delivered in the latest sample, else 0."),
                    labels: [("collector", collector)])
            )
            gauges[collector] = made
            return made
        }
    }

    public func recordStoreFailure() {
        storeFailures.increment()
    }

    public func recordShipAttempt(_ attempt: ShipAttempt) {
        shipAttempts.increment()
        shipDuration.record(.nanoseconds(Int64(attempt.seconds * 1e9)))
        if let failure = attempt.failure {
            shipFailures(failure).increment()
        } else {
            eventsDelivered.increment(by: Int64(attempt.events))
        }
    }

    public func recordDeadLettered(_ count: Int) {
        eventsDeadLettered.increment(by: Int64(count))
    }

    public func recordLogLinesDropped(_ count: Int) {
        logLinesDropped.increment(by: Int64(count))
    }

    public func recordAuthFailure() {
        authFailures.increment()
    }

    // MARK: Exposition

    /// Sets the gauges from the current state and renders the text exposition; with `alertmanager`,
    /// the notifier's families too.
    public func exposition(
        snapshot: AgentSnapshot, shipper: ShipperSnapshot, health: AgentHealth, alertmanager: AlertmanagerSnapshot? = nil
    ) -> [UInt8] {
        if let outbox = snapshot.outbox {
            outboxPending.set(Int64(outbox.pendingEvents))
            outboxDead.set(Int64(outbox.deadLetters))
            outboxDeadBytes.set(Int64(outbox.deadLetterBytes))
            outboxBytes.set(Int64(outbox.databaseBytes))
        }
        outboxMaxBytes.set(Int64(snapshot.outboxMaxBytes))
        outboxFull.set(snapshot.outboxFull ? 1.0 : 0.0)
        breakerState.set(Int64(shipper.breakerState.gaugeValue))
        healthStatus.set(health.ok ? 1.0 : 0.0)
        if let load = snapshot.load1PerCPU { load1PerCPU.set(load) }
        instancesMetered.set(Int64(health.instancesMetered))
        instancesNotRunning.set(Int64(health.instancesNotRunning.count))
        manifestErrors.set(Int64(health.manifestErrors))
        updateFilesystems(snapshot.filesystemUsedRatio)
        updateGPUs(snapshot.gpus)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16_384 + snapshot.instances.count * Self.instanceGauges.count * 128)
        registry.emit(into: &buffer)
        Self.appendInstanceSeries(snapshot.instances, to: &buffer)
        if let alertmanager { Self.appendAlertmanagerSeries(alertmanager, to: &buffer) }
        return buffer
    }

    /// The `hostmeter_instance_*` families in the text exposition format, as swift-prometheus
    /// writes gauges (HELP, TYPE, one line per instance; label values escaped; no family for no
    /// instance).
    static func appendInstanceSeries(_ instances: [InstanceView], to buffer: inout [UInt8]) {
        guard !instances.isEmpty else { return }
        let labels = instances.map { instance in
            var rendered = Array(#"{instance_id=""#.utf8)
            appendEscapedLabelValue(instance.instanceID, to: &rendered)
            rendered.append(contentsOf: #"",user_id=""#.utf8)
            appendEscapedLabelValue(instance.userID, to: &rendered)
            rendered.append(contentsOf: #""} "#.utf8)
            return rendered
        }
        for (name, help, value) in instanceGauges {
            buffer.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) gauge\n".utf8)
            for (instance, rendered) in zip(instances, labels) {
                buffer.append(contentsOf: name.utf8)
                buffer.append(contentsOf: rendered)
                buffer.append(contentsOf: "\(value(instance) ?? .nan)".utf8)
                buffer.append(UInt8(ascii: "\n"))
            }
        }
    }

    /// Backslash, double quote and line feed escaped, as the text format wants in label values.
    private static func appendEscapedLabelValue(_ value: String, to buffer: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\""): buffer.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: #"\n"#.utf8)
            default: buffer.append(byte)
            }
        }
    }

    private func updateGPUs(_ gpus: [GPUGauges]) {
        perGPU.withLock { series in
            var seen = Set<String>()
            for gpu in gpus {
                seen.insert(gpu.uuid)
                let labels = [("gpu_uuid", gpu.uuid), ("gpu_index", "\(gpu.index)")]
                let gauges = series[gpu.uuid] ?? Self.gpuGauges.map {
                    registry.makeGauge(
                        descriptor: Self.name($0.name, help: $0.help), labels: labels)
                }
                series[gpu.uuid] = gauges
                let values: [Double?] = [
                    gpu.utilizationRatio, gpu.memoryUsedBytes.map(Double.init), gpu.memoryTotalBytes.map(Double.init),
                    gpu.temperatureCelsius, gpu.powerWatts,
                ]
                for (gauge, value) in zip(gauges, values) { gauge.set(value ?? .nan) }
            }
            for (uuid, gauges) in series where !seen.contains(uuid) {
                gauges.forEach(registry.unregisterGauge)
                series[uuid] = nil
            }
        }
    }

    private func updateFilesystems(_ ratios: [(mountPoint: String, ratio: Double)]) {
        perFilesystem.withLock { gauges in
            var seen = Set<String>()
            for (mountPoint, ratio) in ratios {
                seen.insert(mountPoint)
                let gauge = gauges[mountPoint] ?? registry.makeGauge(
                    descriptor: Self.name("hostmeter_host_filesystem_used_ratio", help: "Used share of a metered filesystem (0 to 1)."), labels: [("mountpoint", mountPoint)])
                gauges[mountPoint] = gauge
                gauge.set(ratio)
            }
            for (mountPoint, gauge) in gauges where !seen.contains(mountPoint) {
                registry.unregisterGauge(gauge)
                gauges[mountPoint] = nil
            }
        }
    }
}
