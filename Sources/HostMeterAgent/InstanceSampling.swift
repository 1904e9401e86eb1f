public import GPU
public import Logging
public import Metering
public import Probes
public import RuntimeState

/// What one instance looked like at a sample, for the snapshot the API serves.
public struct InstanceStatus: Sendable {
    public var identity: InstanceIdentity
    public var running: Bool
    /// Why it is not running ("cgroup machine.slice/vm42.scope missing"), empty while it runs.
    public var missing: [String]
    public var gauges: InstanceGauges
}

/// Reads every registered instance once per sample: re-scans `instances_dir` into the registry,
/// probes each instance's cgroup, taps and disks, and turns what it read into the readings the
/// recorder meters. Logs a refused manifest, a probe error and a running/not-running change once
/// when it starts and once when it clears, not every sample.
public struct InstanceSampling: Sendable {
    public let registry: InstanceRegistry
    public private(set) var directory: InstanceDirectory?
    /// nil when the cgroup hierarchies could not be found: instances are then metered from their
    /// interfaces only, and those with a cgroup are not running.
    public let probe: InstanceProbe?
    /// Each instance's cgroup and tap files, kept open between probes and closed when the instance
    /// leaves the registry.
    public let keptFiles = KeptInstances()
    let logger: Logger

    private var reportedProblems = Set<ManifestProblem>()
    private var reportedErrors: [String: Set<String>] = [:]
    private var wasRunning: [String: Bool] = [:]
    /// The previous reading of each instance, for the rates /get and /metrics show.
    private var previous: [String: InstanceReading] = [:]
    private var reportedUnread = false
    private var reportedOverLimit = false

    public init(registry: InstanceRegistry, directory: InstanceDirectory?, probe: InstanceProbe?, logger: Logger) {
        self.registry = registry
        self.directory = directory
        self.probe = probe
        self.logger = logger
    }

    /// Scans the manifests and reads every instance at `time`. nil while a new manifest file is
    /// still being read (it takes longer than a scan waits): the set of instances is not known
    /// then, and metering them without it would bill a renamed manifest's VM as removed. The
    /// sampler tries again with its next sample.
    public mutating func observe(
        time: SampleTime, bootID: String?, hostMemoryTotalBytes: UInt64?, gpus: GPUSnapshot?
    ) -> (observations: [InstanceObservation], statuses: [InstanceStatus])? {
        if var directory {
            let scan = directory.scan()
            self.directory = directory
            guard scan.unread.isEmpty else {
                if !reportedUnread {
                    logger.notice(
                        "manifest files are still being read; instances are probed once they are",
                        metadata: ["files": "\(scan.unread.prefix(10).joined(separator: ","))"])
                    reportedUnread = true
                }
                return nil
            }
            reportedUnread = false
            registry.replaceFiles(scan.manifests, problems: scan.problems)
        }
        reportProblems(registry.problems)
        reportOverLimit()

        let visible = (gpus?.gpus ?? []).compactMap { gpu in
            gpu.uuid.map { VisibleGPU(index: gpu.index, uuid: $0, busyNanoseconds: gpu.lost ? nil : gpu.busyNanoseconds) }
        }
        let instances = registry.instances
        var observations: [InstanceObservation] = []
        var statuses: [InstanceStatus] = []
        observations.reserveCapacity(instances.count)
        statuses.reserveCapacity(instances.count)
        var current: [String: InstanceReading] = [:]
        for instance in instances {
            let manifest = instance.manifest
            let id = manifest.instanceID
            let result: InstanceProbeResult
            if let probe {
                result = keptFiles.probe(
                    probe, id: id,
                    target: InstanceTarget(cgroupPath: manifest.cgroup, interfaces: manifest.interfaces, disks: manifest.disks))
            } else {
                var unprobed = InstanceProbeResult()
                unprobed.missing = ["no cgroup hierarchy is mounted"]
                result = unprobed
            }
            reportErrors(id, result.errors.map(\.description))
            reportRunning(id, running: result.isRunning, missing: result.missing)

            var reading: InstanceReading?
            if result.isRunning, let bootID {
                let instanceReading = InstanceReading.instance(
                    result, manifest: manifest, time: time, bootID: bootID, hostMemoryTotalBytes: hostMemoryTotalBytes,
                    gpus: visible)
                reading = instanceReading
                current[id] = instanceReading
            }
            observations.append(InstanceObservation(identity: manifest.identity, reading: reading))
            statuses.append(
                InstanceStatus(
                    identity: manifest.identity, running: reading != nil, missing: result.missing,
                    gauges: Self.gauges(reading, previous: previous[id], cgroup: result.cgroup)))
        }
        previous = current
        let registered = Set(instances.map(\.manifest.instanceID))
        keptFiles.retain(only: registered)
        for id in wasRunning.keys where !registered.contains(id) {
            wasRunning[id] = nil
            reportedErrors[id] = nil
            logger.notice("instance removed; its final period is billed", metadata: ["instance.id": "\(id)"])
        }
        return (observations, statuses)
    }

    /// Current gauges from two consecutive readings: CPU percent of the instance's vCPUs and bytes
    /// per second on its taps (guest's view), where the counters continued.
    static func gauges(_ reading: InstanceReading?, previous: InstanceReading?, cgroup: CgroupUsage?) -> InstanceGauges {
        guard let reading else { return InstanceGauges() }
        var gauges = InstanceGauges(
            memoryUsedBytes: reading.memoryUsedBytes,
            memoryPercent: reading.memoryUsedBytes.flatMap { used in
                reading.memoryTotalBytes.flatMap { $0 > 0 ? Double(used) / Double($0) * 100 : nil }
            },
            storageUsedBytes: reading.storageUsedBytes)
        guard let previous, reading.time.bootNanos > previous.time.bootNanos, reading.bootID == previous.bootID else {
            return gauges
        }
        let seconds = Double(reading.time.bootNanos - previous.time.bootNanos) / 1e9
        func delta(_ source: CounterSource) -> Double? {
            guard let now = reading.counters[source], let before = previous.counters[source], now >= before,
                reading.generations[source.name] == previous.generations[source.name]
            else { return nil }
            return Double(now - before)
        }
        let cpuSource = CounterSource(.cpuNanoseconds, InstanceReading.cgroupSource)
        if let cpu = delta(cpuSource) {
            gauges.cpuPercent = min(100, cpu / 1e9 / (seconds * reading.cpuCapacity) * 100)
        }
        var egress = 0.0
        var ingress = 0.0
        var any = false
        for source in reading.counters.keys {
            guard let value = delta(source) else { continue }
            switch source.kind {
            case .egressBytes: egress += value; any = true
            case .ingressBytes: ingress += value; any = true
            case .cpuNanoseconds, .gpuBusyNanoseconds: break
            }
        }
        if any {
            gauges.networkEgressBytesPerSecond = egress / seconds
            gauges.networkIngressBytesPerSecond = ingress / seconds
        }
        return gauges
    }

    private mutating func reportProblems(_ problems: [ManifestProblem]) {
        let current = Set(problems)
        for problem in problems where !reportedProblems.contains(problem) {
            logger.error(
                "instance manifest refused; the other instances are metered",
                metadata: ["file": "\(problem.file)", "error": "\(problem.message)"])
        }
        for cleared in reportedProblems.subtracting(current) {
            logger.notice("instance manifest accepted again", metadata: ["file": "\(cleared.file)"])
        }
        reportedProblems = current
    }

    /// Instances stored over the API beyond a `max_instances` lowered since stay metered; say so
    /// once, and once when it is over.
    private mutating func reportOverLimit() {
        let count = registry.count
        let over = count > registry.limit
        guard over != reportedOverLimit else { return }
        reportedOverLimit = over
        if over {
            logger.warning(
                "more instances are registered than max_instances; all stay metered, new ones are refused until fewer remain",
                metadata: ["instances": "\(count)", "max_instances": "\(registry.limit)"])
        } else {
            logger.notice("instances are within max_instances again", metadata: ["instances": "\(count)"])
        }
    }

    private mutating func reportErrors(_ id: String, _ errors: [String]) {
        let current = Set(errors)
        let reported = reportedErrors[id] ?? []
        for error in errors where !reported.contains(error) {
            logger.warning("instance probe failed", metadata: ["instance.id": "\(id)", "error": "\(error)"])
        }
        if !reported.isEmpty, current.isEmpty {
            logger.info("instance probe recovered", metadata: ["instance.id": "\(id)"])
        }
        reportedErrors[id] = current.isEmpty ? nil : current
    }

    private mutating func reportRunning(_ id: String, running: Bool, missing: [String]) {
        let before = wasRunning[id]
        wasRunning[id] = running
        guard before != running else { return }
        if running {
            logger.info("instance running", metadata: ["instance.id": "\(id)"])
        } else {
            logger.notice(
                "instance not running; no usage is billed until it runs again",
                metadata: ["instance.id": "\(id)", "reason": "\(missing.joined(separator: "; "))"])
        }
    }
}
