import Foundation
import Metering
public import Outbox
public import Probes
import Synchronization
public import UsageModel

/// Gauges of one instance at the latest sample, for /metrics and the threshold gauges.
public struct InstanceGauges: Sendable, Equatable {
    public var cpuPercent: Double?
    public var memoryUsedBytes: UInt64?
    public var memoryPercent: Double?
    public var networkEgressBytesPerSecond: Double?
    public var networkIngressBytesPerSecond: Double?
    public var storageUsedBytes: UInt64?
    /// CPU seconds of the open period so far.
    public var periodCPUSeconds: Double?

    public init(
        cpuPercent: Double? = nil, memoryUsedBytes: UInt64? = nil, memoryPercent: Double? = nil,
        networkEgressBytesPerSecond: Double? = nil, networkIngressBytesPerSecond: Double? = nil,
        storageUsedBytes: UInt64? = nil, periodCPUSeconds: Double? = nil
    ) {
        self.cpuPercent = cpuPercent
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryPercent = memoryPercent
        self.networkEgressBytesPerSecond = networkEgressBytesPerSecond
        self.networkIngressBytesPerSecond = networkIngressBytesPerSecond
        self.storageUsedBytes = storageUsedBytes
        self.periodCPUSeconds = periodCPUSeconds
    }
}

/// Gauges of one GPU for /metrics.
public struct GPUGauges: Sendable, Equatable {
    public var index: Int
    public var uuid: String
    public var utilizationRatio: Double?
    public var memoryUsedBytes: UInt64?
    public var memoryTotalBytes: UInt64?
    public var temperatureCelsius: Double?
    public var powerWatts: Double?

    public init(
        index: Int, uuid: String, utilizationRatio: Double?, memoryUsedBytes: UInt64?, memoryTotalBytes: UInt64?,
        temperatureCelsius: Double?, powerWatts: Double?
    ) {
        self.index = index
        self.uuid = uuid
        self.utilizationRatio = utilizationRatio
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.temperatureCelsius = temperatureCelsius
        self.powerWatts = powerWatts
    }
}

/// One metered instance as the API shows it.
public struct InstanceView: Sendable {
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    public var isHost: Bool
    /// False when its counters could not be read at the latest sample.
    public var running: Bool
    /// Why it is not running: what was missing ("cgroup … missing", "interface tap3 missing").
    public var missing: [String]
    public var gauges: InstanceGauges
    /// Its JSON object in /get, encoded by the first request after the sample (`EncodedOnce`).
    public var encoded: EncodedOnce
    /// Its JSON object in /get.
    public var json: [UInt8] { encoded.json }

    public init(
        instanceID: String, userID: String, orgID: String?, isHost: Bool, running: Bool, gauges: InstanceGauges,
        periodSoFar: UsageEvent?, missing: [String] = []
    ) {
        self.missing = missing
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.isHost = isHost
        self.running = running
        self.gauges = gauges
        encoded = EncodedOnce(
            Body(
                instanceID: instanceID, userID: userID, orgID: orgID, host: isHost, running: running, missing: missing,
                current: Current(gauges), periodSoFar: periodSoFar.map(PeriodSoFar.init)),
            encode: { Self.encode($0) })
    }

    private struct Body: Encodable, Sendable {
        var instanceID: String
        var userID: String
        var orgID: String?
        var host: Bool
        var running: Bool
        var missing: [String]
        var current: Current
        var periodSoFar: PeriodSoFar?

        enum CodingKeys: String, CodingKey {
            case instanceID = "instance_id", userID = "user_id", orgID = "org_id", host, running, missing, current
            case periodSoFar = "period_so_far"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(instanceID, forKey: .instanceID)
            try container.encode(userID, forKey: .userID)
            try container.encode(orgID, forKey: .orgID)
            try container.encode(host, forKey: .host)
            try container.encode(running, forKey: .running)
            try container.encode(missing, forKey: .missing)
            try container.encode(current, forKey: .current)
            try container.encode(periodSoFar, forKey: .periodSoFar)
        }
    }

    private struct Current: Encodable, Sendable {
        var gauges: InstanceGauges
        init(_ gauges: InstanceGauges) { self.gauges = gauges }

        enum CodingKeys: String, CodingKey {
            case cpuPercent = "cpu_percent", memoryUsedBytes = "memory_used_bytes", memoryPercent = "memory_percent"
            case egress = "network_egress_bytes_per_second", ingress = "network_ingress_bytes_per_second"
            case storage = "storage_used_bytes"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(gauges.cpuPercent.map { Self.rounded($0) }, forKey: .cpuPercent)
            try container.encode(gauges.memoryUsedBytes, forKey: .memoryUsedBytes)
            try container.encode(gauges.memoryPercent.map { Self.rounded($0) }, forKey: .memoryPercent)
            try container.encode(gauges.networkEgressBytesPerSecond.map { Self.rounded($0) }, forKey: .egress)
            try container.encode(gauges.networkIngressBytesPerSecond.map { Self.rounded($0) }, forKey: .ingress)
            try container.encode(gauges.storageUsedBytes, forKey: .storage)
        }

        static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
    }

    /// The open period: what it would bill if it closed now.
    private struct PeriodSoFar: Encodable {
        var event: UsageEvent
        init(_ event: UsageEvent) { self.event = event }

        enum CodingKeys: String, CodingKey { case start, end, seconds, metrics }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(event.period.start, forKey: .start)
            try container.encode(event.period.end, forKey: .end)
            try container.encode(event.period.seconds, forKey: .seconds)
            try container.encode(event.metrics, forKey: .metrics)
        }
    }

    public static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every value here is finite and every key a string: encoding cannot fail.
        return (try? Array(encoder.encode(value))) ?? Array("null".utf8)
    }
}

/// How the latest sample went.
public struct SampleStatus: Sendable, Equatable {
    public var wallNanos: Int64
    public var durationNanos: UInt64
    public var failures: [CollectorFailure]

    public init(wallNanos: Int64, durationNanos: UInt64, failures: [CollectorFailure]) {
        self.wallNanos = wallNanos
        self.durationNanos = durationNanos
        self.failures = failures
    }
}

/// Everything the API serves, replaced whole by the sampler after each sample: a request reads
/// memory only, never /proc or the database.
public struct AgentSnapshot: Sendable {
    public var hostID: String
    public var intervalSeconds: Int
    public var sampleSeconds: Int
    public var startedAt: Double
    public var lastSample: SampleStatus?
    /// The latest host sample with rates since the one before, for /get, encoded when first asked.
    public var host: EncodedOnce?
    /// `host`'s JSON (setting it stores JSON that is already encoded).
    public var hostJSON: [UInt8]? {
        get { host?.json }
        set { host = newValue.map(EncodedOnce.init(bytes:)) }
    }
    public var instances: [InstanceView] = []
    /// Per-GPU figures for /get (an empty array without GPUs), encoded when first asked.
    public var gpusView = EncodedOnce(bytes: Array("[]".utf8))
    /// `gpusView`'s JSON (setting it stores JSON that is already encoded).
    public var gpusJSON: [UInt8] {
        get { gpusView.json }
        set { gpusView = EncodedOnce(bytes: newValue) }
    }
    public var gpus: [GPUGauges] = []
    /// Host gauges for /metrics and thresholds.
    public var filesystemUsedRatio: [(mountPoint: String, ratio: Double)] = []
    public var load1PerCPU: Double?
    public var outbox: OutboxStats?
    public var outboxMaxBytes: Int
    /// The latest step could not be stored because the outbox is at its bound.
    public var outboxFull = false
    /// Why the latest step could not be stored (nil: it was).
    public var storeError: String?
    /// Manifest files refused at the latest scan of `instances_dir`.
    public var manifestProblems = 0

    public init(hostID: String, intervalSeconds: Int, sampleSeconds: Int, outboxMaxBytes: Int, startedAt: Double) {
        self.hostID = hostID
        self.intervalSeconds = intervalSeconds
        self.sampleSeconds = sampleSeconds
        self.outboxMaxBytes = outboxMaxBytes
        self.startedAt = startedAt
    }
}

/// The snapshot shared between the sampler, which replaces it, and the API, which reads it.
public final class AgentState: Sendable {
    private let current: Mutex<AgentSnapshot>

    public init(_ snapshot: AgentSnapshot) {
        current = Mutex(snapshot)
    }

    public var snapshot: AgentSnapshot { current.withLock { $0 } }

    public func update(_ body: (inout AgentSnapshot) -> Void) {
        current.withLock { body(&$0) }
    }
}
