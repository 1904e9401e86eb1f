import AgentAPI
import ArgumentParser
import Foundation
import HostMeterAgent
import Logging
import Metering
import Outbox
import Probes
import RuntimeState
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// The cost of metering many VMs on one host (issue #8, item 6): a generated sys root with
/// `--count` instances read and metered by the agent's own pipeline on a synthetic clock, and the
/// memory each instance costs.
struct InstanceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instances",
        abstract: "CPU per period and memory per instance of sampling, metering and storing N instances.",
        discussion: """
            Generates a host in a temporary directory (removed at the end): a mountinfo, a cgroup per \
            instance (v2, or v1 cpuacct, memory and blkio), a tap per instance under sys/class/net, a sparse \
            disk image per instance and a manifest per instance in an instances.d directory. Each sample \
            runs what the agent's sampler runs: InstanceSampling.observe (directory scan and probes), \
            MeteringRecorder.record (engine and one SQLite transaction) and the outbox stats, timed with \
            thread CPU time. Counters are rewritten before each sample, outside the timed region. The files \
            are regular files on a disk filesystem, not cgroupfs or sysfs: reading them costs the \
            page cache's price, not the kernel's price of generating them. With --kernel (root) the VMs \
            are the kernel's own objects instead: a real cgroup per VM in each hierarchy read, a veth \
            pair per VM in a network namespace the bench makes, read through that namespace's sysfs \
            (KernelHost); all of it is removed at the end.
            """)

    enum Layout: String, ExpressibleByArgument, CaseIterable, Codable {
        case v2, v1
    }

    @Option(help: "Instances to generate.")
    var count = 1000

    @Option(help: "Cgroup layout of the generated host: v2 (unified) or v1 (legacy: cpuacct, memory and blkio).")
    var layout = Layout.v2

    @Option(help: "Measured periods, after one warm-up period.")
    var periods = 10

    @Option(help: "Period length (interval_seconds).")
    var intervalSeconds = 30

    @Option(help: "Seconds between samples (sample_seconds); must divide the interval.")
    var sampleSeconds = 5

    @Option(help: "Seconds between probes of the instances (instance_sample_seconds; default as the agent's: min(interval, 15) rounded down to a multiple of sample_seconds); must divide the interval.")
    var instanceSampleSeconds: Int?

    @Option(help: "Instance counts to measure memory at, comma-separated, each in its own process (default: 0, count/10, count/2, count).")
    var memoryCounts: String?

    @Flag(help: "Do not measure memory per instance.")
    var noMemory = false

    @Flag(help: "Keep closed periods in the outbox (a consumer that is down) instead of draining them after each period, outside the timed region, as a healthy shipper would.")
    var noDrain = false

    @Option(help: "Where the SQLite database goes (default: the system's temporary directory, on disk as a state_dir is).")
    var workDirectory: String?

    @Option(help: "Where the generated host's files go (default: /dev/shm when writable, else the work directory).")
    var treeDirectory: String?

    @Flag(help: "Make the VMs of the running kernel's objects instead of files: real cgroups and veth pairs in a network namespace of the bench's own (needs root; see KernelHost). Everything made is removed at the end.")
    var kernel = false

    @Flag(help: "Print the figures as JSON instead of lines.")
    var json = false

    @Flag(help: .hidden)
    var memoryChild = false

    static let bootID = "5e1f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
    /// Period boundaries fall on multiples of the interval; 1_763_726_400 is a multiple of 3600.
    static let startSeconds: Int64 = 1_763_726_400
    static let hostMemoryBytes: UInt64 = 512 << 30

    func validate() throws {
        guard (0...100_000).contains(count) else { throw ValidationError("--count must be 0…100000") }
        guard (1...1000).contains(periods) else { throw ValidationError("--periods must be 1…1000") }
        guard (1...3600).contains(intervalSeconds), (1...intervalSeconds).contains(sampleSeconds),
            intervalSeconds % sampleSeconds == 0
        else { throw ValidationError("--sample-seconds must divide --interval-seconds (1…3600)") }
        _ = try counts()
    }

    /// The instance counts whose memory is measured.
    func counts() throws -> [Int] {
        guard let memoryCounts else { return Array(Set([0, count / 10, count / 2, count])).sorted() }
        let values = memoryCounts.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count <= 10, values.allSatisfy({ $0.map { (0...100_000).contains($0) } ?? false })
        else { throw ValidationError("--memory-counts must be up to 10 counts of 0…100000, comma-separated") }
        return Array(Set(values.compactMap { $0 })).sorted()
    }

    func run() throws {
        let name = "hostmeter-bench-instances-\(UUID().uuidString)"
        let state = (workDirectory ?? FileManager.default.temporaryDirectory.path) + "/" + name
        let root = (treeDirectory ?? Self.defaultTreeDirectory(else: workDirectory)) + "/" + name
        for directory in kernel ? [state] : [state, root] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: state)
        }

        let generationStart = HostClock.monotonicNanos()
        let host: any BenchHost
        if kernel {
            let directory = treeDirectory ?? Self.defaultTreeDirectory(else: workDirectory)
            KernelHost.removeLeftovers(directory: directory)
            host = try KernelHost(directory: directory, layout: layout, count: count)
        } else {
            host = try GeneratedHost(root: root, layout: layout, count: count)
        }
        let generationNanos = HostClock.monotonicNanos() - generationStart
        let result = try runPipeline(host, database: state + "/hostmeter.sqlite", breakdown: !memoryChild)

        if memoryChild {
            try printJSONLine(MemoryPoint(count: count, status: result.memoryAfter))
            return
        }
        let memory = noMemory ? nil : try measureMemory()
        let report = Report(
            bench: self, result: result, generationSeconds: Double(generationNanos) / 1e9, memory: memory,
            treeFilesystem: kernel ? "kernel cgroupfs and sysfs" : Self.filesystemType(root),
            databaseFilesystem: Self.filesystemType(state))
        if json {
            try printJSON(report)
        } else {
            for line in report.lines() { print(line) }
        }
    }

    /// tmpfs where there is one: reading a file that was rewritten since it was last read makes
    /// ext4 journal an atime update (relatime), a cost the kernel's cgroupfs and sysfs files never
    /// have, and which was about 8 % of the probes' time here.
    static func defaultTreeDirectory(else workDirectory: String?) -> String {
        if access("/dev/shm", W_OK) == 0 { return "/dev/shm" }
        return workDirectory ?? FileManager.default.temporaryDirectory.path
    }

    /// The type of the filesystem holding `path` as /proc/self/mountinfo names it, for the report.
    static func filesystemType(_ path: String) -> String {
        guard let mounts = try? ProcFS().mountinfo() else { return "unknown" }
        let best = mounts.filter { path == $0.mountPoint || path.hasPrefix($0.mountPoint == "/" ? "/" : $0.mountPoint + "/") }
            .max { $0.mountPoint.count < $1.mountPoint.count }
        return best?.fsType ?? "unknown"
    }

    // MARK: The pipeline

    /// What one sample cost, phase by phase.
    struct SampleCost {
        var closing: Bool
        var observeCPU: UInt64 = 0
        var observeWall: UInt64 = 0
        var recordCPU: UInt64 = 0
        var recordWall: UInt64 = 0
        var statsCPU: UInt64 = 0
        var statsWall: UInt64 = 0
        /// CPU time of the whole process over the sample: catches work on other threads.
        var processCPU: UInt64 = 0

        var cpu: UInt64 { observeCPU + recordCPU + statsCPU }
        var wall: UInt64 { observeWall + recordWall + statsWall }
    }

    struct PipelineResult {
        var layoutKind: CgroupLayout.Kind
        var first: SampleCost
        /// The measured samples, in order: `periods` periods of `samplesPerPeriod`, each ending
        /// with the sample that closes it.
        var samples: [SampleCost]
        var samplesPerPeriod: Int
        var eventsPerClosingSample: Int
        var outboxPendingAtEnd: Int
        var databaseBytes: Int
        /// Descriptors the probes keep open at the end (`KeptInstances`).
        var keptDescriptors: Int
        var breakdown: Breakdown?
        var memoryAfter: MemoryStatus
    }

    func time(_ sample: Int) -> SampleTime {
        let seconds = Int64(sample * sampleSeconds)
        return SampleTime(
            wallNanos: (Self.startSeconds + seconds) * 1_000_000_000, bootNanos: UInt64(1_000 + seconds) * 1_000_000_000)
    }

    /// A host sample with a boot ID and CPU ticks that grow like a busy 64-CPU host's.
    func hostSample(_ sample: Int) -> HostSample {
        var host = HostSample(time: time(sample))
        host.bootID = Self.bootID
        let ticks = UInt64(sample * sampleSeconds) * 100 * 16
        let cpu = CPUTicks(user: 1_000_000 + ticks, nice: 0, system: ticks / 4, idle: 5_000_000 + ticks * 3)
        host.cpu = Stat(total: cpu, perCPU: [PerCPUStat(id: 0, ticks: cpu)], bootTime: nil, userHZ: 100)
        return host
    }

    func runPipeline(_ host: any BenchHost, database path: String, breakdown measureBreakdown: Bool) throws
        -> PipelineResult
    {
        let probe = try host.probe()
        let cgroupLayout = probe.cgroups.layout
        let logger = Logger(label: "hostmeter-bench") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let limit = max(host.count, AgentConfiguration.defaultMaxInstances)
        let registry = InstanceRegistry(limit: limit)
        // The first scan waits for every manifest (they are parsed on the reader's thread), so
        // sample 0 takes every baseline as the agent's first full scan does.
        var sampling = InstanceSampling(
            registry: registry,
            directory: InstanceDirectory(
                path: host.manifests, maxManifests: limit, parseDeadline: .seconds(60), scanWait: .seconds(120)),
            probe: probe, logger: logger)
        let database = try AgentDatabase.open(path: path)
        let meter = MeterConfiguration(hostID: "bench-host", intervalSeconds: Int64(intervalSeconds))
        var recorder = try MeteringRecorder(
            database: database, configuration: meter, identity: InstanceIdentity(instanceID: "bench-host", userID: "operator"),
            encoder: UsageEventEncoder())

        let perPeriod = intervalSeconds / sampleSeconds
        let instanceSeconds = instanceSampleSeconds ?? max(sampleSeconds, min(intervalSeconds, 15) / sampleSeconds * sampleSeconds)
        guard instanceSeconds % sampleSeconds == 0, intervalSeconds % instanceSeconds == 0 else {
            throw BenchFailure("--instance-sample-seconds must be a multiple of --sample-seconds and divide the interval")
        }
        // Sample 0 takes every baseline, the first period is warm-up, then `periods` are measured.
        let total = 1 + perPeriod * (1 + periods)
        var first = SampleCost(closing: false)
        var samples: [SampleCost] = []
        samples.reserveCapacity(perPeriod * periods)
        var eventsPerClosing = 0
        for index in 0..<total {
            try host.writeCounters(sample: index)
            let sample = hostSample(index)
            let closing = index > 0 && index % perPeriod == 0
            var cost = SampleCost(closing: closing)

            let processStart = Self.processCPUNanos()
            let cpuStart = HostClock.threadCPUNanos()
            let wallStart = HostClock.monotonicNanos()
            // As SamplerService: instances are probed on the samples of instance_sample_seconds only.
            let probesInstances = (index * sampleSeconds) % instanceSeconds == 0
            let observed = probesInstances
                ? sampling.observe(
                    time: sample.time, bootID: sample.bootID, hostMemoryTotalBytes: Self.hostMemoryBytes, gpus: nil)
                : nil
            let cpuObserved = HostClock.threadCPUNanos()
            let wallObserved = HostClock.monotonicNanos()
            let step = try recorder.record(sample, instances: observed?.observations)
            let cpuRecorded = HostClock.threadCPUNanos()
            let wallRecorded = HostClock.monotonicNanos()
            _ = try recorder.database.stats()
            let cpuEnd = HostClock.threadCPUNanos()
            let wallEnd = HostClock.monotonicNanos()
            cost.processCPU = Self.processCPUNanos() - processStart
            cost.observeCPU = cpuObserved - cpuStart
            cost.observeWall = wallObserved - wallStart
            cost.recordCPU = cpuRecorded - cpuObserved
            cost.recordWall = wallRecorded - wallObserved
            cost.statsCPU = cpuEnd - cpuRecorded
            cost.statsWall = wallEnd - wallRecorded

            if index == 0, let observed {
                try Self.check(observed.observations, statuses: observed.statuses, count: host.count)
            }
            if closing {
                // Every instance and the host close one period, or the generated host is not read right.
                eventsPerClosing = step?.events.count ?? 0
                guard eventsPerClosing == host.count + 1 else {
                    throw BenchFailure("sample \(index) closed \(eventsPerClosing) periods; expected \(host.count + 1)")
                }
                if !noDrain { try Self.drain(database) }
            }
            if index == 0 {
                first = cost
            } else if index > perPeriod {
                samples.append(cost)
            }
        }

        let breakdown = measureBreakdown ? try self.breakdown(host, sampling: sampling, recorder: recorder, next: total - 1 + perPeriod) : nil
        let stats = try database.stats()
        return PipelineResult(
            layoutKind: cgroupLayout.kind, first: first, samples: samples, samplesPerPeriod: perPeriod,
            eventsPerClosingSample: eventsPerClosing, outboxPendingAtEnd: stats.pendingEvents,
            databaseBytes: stats.databaseBytes, keptDescriptors: sampling.keptFiles.descriptorCount, breakdown: breakdown,
            memoryAfter: try MemoryStatus.current())
    }

    /// Fails unless every instance was read whole at the first sample: running, with CPU time, two
    /// tap counters, memory and storage.
    static func check(_ observations: [InstanceObservation], statuses: [InstanceStatus], count: Int) throws {
        guard observations.count == count else {
            throw BenchFailure("\(observations.count) instances registered from the manifests; expected \(count)")
        }
        for (observation, status) in zip(observations, statuses) {
            guard let reading = observation.reading, reading.counters.count == 3, reading.memoryUsedBytes != nil,
                (reading.storageUsedBytes ?? 0) > 0
            else {
                throw BenchFailure(
                    "instance \(observation.identity.instanceID) was not read whole: running \(status.running), missing \(status.missing), reading \(String(describing: observation.reading))"
                )
            }
        }
    }

    /// Deletes the outbox's events, as a shipper that delivered them would.
    static func drain(_ database: AgentDatabase) throws {
        for _ in 0..<1_000 {
            let leased = try database.lease(now: 1e12, maxEvents: 10_000, maxBytes: 256 << 20)
            if leased.isEmpty { return }
            try database.acknowledge(leased.map(\.id))
        }
    }

    static func processCPUNanos() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    static func executablePath() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw BenchFailure("cannot read /proc/self/exe: errno \(errno)") }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func printJSONLine(_ value: some Encodable) throws {
        FileHandle.standardOutput.write(try JSONEncoder().encode(value))
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
