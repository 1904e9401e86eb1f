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
            page cache's price, not the kernel's price of generating them.
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
        for directory in [state, root] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: state)
        }

        let generationStart = HostClock.monotonicNanos()
        let host = try GeneratedHost(root: root, layout: layout, count: count)
        let generationNanos = HostClock.monotonicNanos() - generationStart
        let result = try runPipeline(host, database: state + "/hostmeter.sqlite", breakdown: !memoryChild)

        if memoryChild {
            try printJSONLine(MemoryPoint(count: count, status: result.memoryAfter))
            return
        }
        let memory = noMemory ? nil : try measureMemory()
        let report = Report(
            bench: self, result: result, generationSeconds: Double(generationNanos) / 1e9, memory: memory,
            treeFilesystem: Self.filesystemType(root), databaseFilesystem: Self.filesystemType(state))
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

    func runPipeline(_ host: GeneratedHost, database path: String, breakdown measureBreakdown: Bool) throws
        -> PipelineResult
    {
        let mounts = try ProcFS(root: host.root + "/proc").mountinfo()
        let cgroupLayout = CgroupLayout.detect(mounts)
        let probe = InstanceProbe(layout: cgroupLayout, sys: SysFS(root: host.root + "/sys"), rootfs: host.root)
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
            databaseBytes: stats.databaseBytes, breakdown: breakdown, memoryAfter: try MemoryStatus.current())
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

    // MARK: Breakdown

    /// Median CPU time of each step of a closing sample, each run on its own with the same inputs
    /// the pipeline uses; nothing is recorded.
    struct Breakdown: Encodable {
        var repetitions: Int
        var scanMicroseconds: Double
        var registryReplaceMicroseconds: Double
        var registryInstancesMicroseconds: Double
        var probeMicroseconds: Double
        var readingsMicroseconds: Double
        /// A copy of InstanceSampling.observe's loop that looks for removed instances.
        var removedCheckMicroseconds: Double
        var engineMicroseconds: Double
        var encodeEventsMicroseconds: Double
        var encodeCheckpointsMicroseconds: Double

        enum CodingKeys: String, CodingKey {
            case repetitions
            case scanMicroseconds = "scan_us", registryReplaceMicroseconds = "registry_replace_us"
            case registryInstancesMicroseconds = "registry_instances_us", probeMicroseconds = "probe_us"
            case readingsMicroseconds = "readings_us", removedCheckMicroseconds = "removed_check_us"
            case engineMicroseconds = "engine_us", encodeEventsMicroseconds = "encode_events_us"
            case encodeCheckpointsMicroseconds = "encode_checkpoints_us"
        }
    }

    func breakdown(_ host: GeneratedHost, sampling: InstanceSampling, recorder: MeteringRecorder, next: Int) throws
        -> Breakdown
    {
        try host.writeCounters(sample: next)
        let time = time(next)
        let repetitions = 5
        var timings: [String: [UInt64]] = [:]
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let start = HostClock.threadCPUNanos()
            let value = try body()
            timings[name, default: []].append(HostClock.threadCPUNanos() - start)
            return value
        }
        let registry = sampling.registry
        let eventEncoder = UsageEventEncoder()
        let stateEncoder = JSONEncoder()
        stateEncoder.outputFormatting = [.sortedKeys]
        for _ in 0..<repetitions {
            var directory = sampling.directory ?? InstanceDirectory(path: host.manifests)
            let scan = timed("scan") { directory.scan() }
            timed("replace") { registry.replaceFiles(scan.manifests, problems: scan.problems) }
            let instances = timed("instances") { registry.instances }
            let probes = timed("probe") {
                instances.map { instance in
                    sampling.probe?.probe(
                        InstanceTarget(
                            cgroupPath: instance.manifest.cgroup, interfaces: instance.manifest.interfaces,
                            disks: instance.manifest.disks)) ?? InstanceProbeResult()
                }
            }
            let readings = timed("readings") {
                zip(instances, probes).map { instance, probe in
                    InstanceReading.instance(
                        probe, manifest: instance.manifest, time: time, bootID: Self.bootID,
                        hostMemoryTotalBytes: Self.hostMemoryBytes)
                }
            }
            let ids = instances.map(\.manifest.instanceID)
            let removed = timed("removed") {
                var removed = 0
                for id in ids where !instances.contains(where: { $0.manifest.instanceID == id }) { removed += 1 }
                return removed
            }
            precondition(removed == 0)
            let steps = timed("engine") {
                zip(instances, readings).map { instance, reading in
                    Meter.advance(
                        recorder.states[instance.manifest.instanceID], with: reading, identity: instance.manifest.identity,
                        configuration: recorder.configuration)
                }
            }
            guard steps.allSatisfy({ $0.events.count == 1 }) else {
                throw BenchFailure("the breakdown's engine step did not close one period per instance")
            }
            _ = try timed("events") { try steps.map { try eventEncoder.encode($0.events[0]) } }
            _ = try timed("checkpoints") { try steps.map { try stateEncoder.encode($0.state) } }
        }
        func median(_ name: String) -> Double { Distribution(nanoseconds: timings[name] ?? [0]).medianMicroseconds }
        return Breakdown(
            repetitions: repetitions, scanMicroseconds: median("scan"), registryReplaceMicroseconds: median("replace"),
            registryInstancesMicroseconds: median("instances"), probeMicroseconds: median("probe"),
            readingsMicroseconds: median("readings"), removedCheckMicroseconds: median("removed"),
            engineMicroseconds: median("engine"), encodeEventsMicroseconds: median("events"),
            encodeCheckpointsMicroseconds: median("checkpoints"))
    }

    // MARK: Memory

    /// This process's memory from /proc/self/status, in kB as the kernel prints it.
    struct MemoryStatus: Codable {
        var vmRSSKilobytes: Int
        var rssAnonKilobytes: Int
        var rssFileKilobytes: Int
        var vmHWMKilobytes: Int

        enum CodingKeys: String, CodingKey {
            case vmRSSKilobytes = "vm_rss_kb", rssAnonKilobytes = "rss_anon_kb", rssFileKilobytes = "rss_file_kb"
            case vmHWMKilobytes = "vm_hwm_kb"
        }

        static func current() throws -> MemoryStatus {
            let text = String(decoding: try FileReader.read("/proc/self/status"), as: UTF8.self)
            var fields: [String: Int] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
                if parts.count >= 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
            }
            guard let rss = fields["VmRSS"], let anon = fields["RssAnon"], let file = fields["RssFile"] else {
                throw BenchFailure("/proc/self/status has no VmRSS, RssAnon or RssFile")
            }
            return MemoryStatus(
                vmRSSKilobytes: rss, rssAnonKilobytes: anon, rssFileKilobytes: file, vmHWMKilobytes: fields["VmHWM"] ?? 0)
        }
    }

    struct MemoryPoint: Codable {
        var count: Int
        var status: MemoryStatus
    }

    struct MemoryReport: Encodable {
        var points: [MemoryPoint]
        /// RssAnon growth per instance between consecutive counts.
        var bytesPerInstanceBySegment: [Double]
        /// Least-squares slope of RssAnon over the instance count.
        var bytesPerInstance: Double
        /// The largest distance of a point from the fitted line, and RssAnon's growth from the
        /// smallest count to the largest.
        var maxDeviationBytes: Double
        var growthBytes: Double
        var linear: Bool

        enum CodingKeys: String, CodingKey {
            case points, linear
            case bytesPerInstanceBySegment = "bytes_per_instance_by_segment"
            case bytesPerInstance = "bytes_per_instance"
            case maxDeviationBytes = "max_deviation_bytes", growthBytes = "growth_bytes"
        }
    }

    /// Runs the same pipeline at each count in its own process (so no heap is inherited from a
    /// larger run) and reads its memory after the last period.
    func measureMemory() throws -> MemoryReport {
        let executable = try Self.executablePath()
        var points: [MemoryPoint] = []
        for count in try counts() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            var arguments = [
                "instances", "--memory-child", "--count", String(count), "--layout", layout.rawValue, "--periods",
                String(periods), "--interval-seconds", String(intervalSeconds), "--sample-seconds", String(sampleSeconds),
            ]
            if noDrain { arguments.append("--no-drain") }
            if let instanceSampleSeconds { arguments += ["--instance-sample-seconds", String(instanceSampleSeconds)] }
            if let workDirectory { arguments += ["--work-directory", workDirectory] }
            if let treeDirectory { arguments += ["--tree-directory", treeDirectory] }
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchFailure("the memory run at \(count) instances exited with \(process.terminationStatus)")
            }
            points.append(try JSONDecoder().decode(MemoryPoint.self, from: data))
        }
        var segments: [Double] = []
        for (lower, upper) in zip(points, points.dropFirst()) where upper.count > lower.count {
            segments.append(
                Double(upper.status.rssAnonKilobytes - lower.status.rssAnonKilobytes) * 1024 / Double(upper.count - lower.count))
        }
        let xs = points.map { Double($0.count) }
        let ys = points.map { Double($0.status.rssAnonKilobytes) * 1024 }
        let meanX = xs.reduce(0, +) / Double(max(1, xs.count))
        let meanY = ys.reduce(0, +) / Double(max(1, ys.count))
        let covariance = zip(xs, ys).reduce(0) { $0 + ($1.0 - meanX) * ($1.1 - meanY) }
        let variance = xs.reduce(0) { $0 + ($1 - meanX) * ($1 - meanX) }
        let slope = variance > 0 ? covariance / variance : 0
        // Linear: no point further from the fitted line than 5 % of the growth from the smallest
        // count to the largest. A fixed cost paid once by the first instances (a parser set up,
        // SQLite's page cache warming) shows as a steeper first segment but still fits.
        let intercept = meanY - slope * meanX
        let deviation = zip(xs, ys).map { abs($1 - (intercept + slope * $0)) }.max() ?? 0
        let growth = (ys.max() ?? 0) - (ys.min() ?? 0)
        let linear = points.count >= 3 && growth > 0 && deviation <= 0.05 * growth
        return MemoryReport(
            points: points, bytesPerInstanceBySegment: segments, bytesPerInstance: slope,
            maxDeviationBytes: deviation, growthBytes: growth, linear: linear)
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

    // MARK: Report

    struct Report: Encodable {
        let benchmark = "instances"
        var count: Int
        var layout: Layout
        var cgroupLayout: String
        var periods: Int
        var intervalSeconds: Int
        var sampleSeconds: Int
        var instanceSampleSeconds: Int
        var outboxDrained: Bool
        var treeFilesystem: String
        var databaseFilesystem: String
        var generationSeconds: Double
        var eventsPerClosingSample: Int
        var outboxPendingAtEnd: Int
        var databaseBytes: Int
        /// Thread CPU per period (the sum of its samples), milliseconds.
        var cpuPerPeriodMedianMilliseconds: Double
        var cpuPerPeriodMaxMilliseconds: Double
        var processCPUPerPeriodMedianMilliseconds: Double
        var wallPerPeriodMedianMilliseconds: Double
        var targetCPUPerPeriodMilliseconds: Double
        var percentOfOneCore: Double
        var cpuPerInstancePerSampleMicroseconds: Double
        var cpuPerInstancePerPeriodMicroseconds: Double
        var sampleCPU: Distribution
        var sampleWall: Distribution
        var closingSampleCPU: Distribution
        var closingSampleWall: Distribution
        var otherSampleCPU: Distribution
        var observeCPU: Distribution
        var observeCPUClosing: Distribution
        var recordCPU: Distribution
        var recordCPUClosing: Distribution
        var recordWallClosing: Distribution
        var statsCPU: Distribution
        var firstSampleCPUMilliseconds: Double
        var firstSampleWallMilliseconds: Double
        var breakdown: Breakdown?
        var memoryAfterRun: MemoryStatus
        var memory: MemoryReport?

        enum CodingKeys: String, CodingKey {
            case benchmark, count, layout, periods, breakdown, memory
            case cgroupLayout = "cgroup_layout", intervalSeconds = "interval_seconds", sampleSeconds = "sample_seconds"
            case instanceSampleSeconds = "instance_sample_seconds"
            case outboxDrained = "outbox_drained", generationSeconds = "generation_seconds"
            case treeFilesystem = "tree_filesystem", databaseFilesystem = "database_filesystem"
            case eventsPerClosingSample = "events_per_closing_sample", outboxPendingAtEnd = "outbox_pending_at_end"
            case databaseBytes = "database_bytes"
            case cpuPerPeriodMedianMilliseconds = "cpu_per_period_median_ms"
            case cpuPerPeriodMaxMilliseconds = "cpu_per_period_max_ms"
            case processCPUPerPeriodMedianMilliseconds = "process_cpu_per_period_median_ms"
            case wallPerPeriodMedianMilliseconds = "wall_per_period_median_ms"
            case targetCPUPerPeriodMilliseconds = "target_cpu_per_period_ms"
            case percentOfOneCore = "percent_of_one_core"
            case cpuPerInstancePerSampleMicroseconds = "cpu_per_instance_per_sample_us"
            case cpuPerInstancePerPeriodMicroseconds = "cpu_per_instance_per_period_us"
            case sampleCPU = "sample_cpu", sampleWall = "sample_wall", closingSampleCPU = "closing_sample_cpu"
            case closingSampleWall = "closing_sample_wall", otherSampleCPU = "other_sample_cpu"
            case observeCPU = "scan_and_probe_cpu", observeCPUClosing = "scan_and_probe_cpu_closing"
            case recordCPU = "record_cpu", recordCPUClosing = "record_cpu_closing", recordWallClosing = "record_wall_closing"
            case statsCPU = "outbox_stats_cpu"
            case firstSampleCPUMilliseconds = "first_sample_cpu_ms", firstSampleWallMilliseconds = "first_sample_wall_ms"
            case memoryAfterRun = "memory_after_run"
        }

        init(
            bench: InstanceBench, result: PipelineResult, generationSeconds: Double, memory: MemoryReport?,
            treeFilesystem: String, databaseFilesystem: String
        ) {
            self.treeFilesystem = treeFilesystem
            self.databaseFilesystem = databaseFilesystem
            let samples = result.samples
            let perPeriod = result.samplesPerPeriod
            let periodCosts = stride(from: 0, to: samples.count, by: perPeriod).map { samples[$0..<min(samples.count, $0 + perPeriod)] }
            let cpuPerPeriod = periodCosts.map { $0.reduce(0) { $0 + $1.cpu } }
            let processPerPeriod = periodCosts.map { $0.reduce(0) { $0 + $1.processCPU } }
            let wallPerPeriod = periodCosts.map { $0.reduce(0) { $0 + $1.wall } }
            let closing = samples.filter(\.closing)
            let other = samples.filter { !$0.closing }
            count = bench.count
            layout = bench.layout
            cgroupLayout = result.layoutKind.rawValue
            periods = bench.periods
            intervalSeconds = bench.intervalSeconds
            sampleSeconds = bench.sampleSeconds
            instanceSampleSeconds = bench.instanceSampleSeconds
                ?? max(bench.sampleSeconds, min(bench.intervalSeconds, 15) / bench.sampleSeconds * bench.sampleSeconds)
            outboxDrained = !bench.noDrain
            self.generationSeconds = generationSeconds
            eventsPerClosingSample = result.eventsPerClosingSample
            outboxPendingAtEnd = result.outboxPendingAtEnd
            databaseBytes = result.databaseBytes
            cpuPerPeriodMedianMilliseconds = Distribution(nanoseconds: cpuPerPeriod).medianMicroseconds / 1000
            cpuPerPeriodMaxMilliseconds = Double(cpuPerPeriod.max() ?? 0) / 1e6
            processCPUPerPeriodMedianMilliseconds = Distribution(nanoseconds: processPerPeriod).medianMicroseconds / 1000
            wallPerPeriodMedianMilliseconds = Distribution(nanoseconds: wallPerPeriod).medianMicroseconds / 1000
            targetCPUPerPeriodMilliseconds = Double(bench.intervalSeconds) * 1000 / 100
            percentOfOneCore = cpuPerPeriodMedianMilliseconds / (Double(bench.intervalSeconds) * 1000) * 100
            sampleCPU = Distribution(nanoseconds: samples.map(\.cpu))
            sampleWall = Distribution(nanoseconds: samples.map(\.wall))
            closingSampleCPU = Distribution(nanoseconds: closing.map(\.cpu))
            closingSampleWall = Distribution(nanoseconds: closing.map(\.wall))
            otherSampleCPU = Distribution(nanoseconds: other.isEmpty ? [0] : other.map(\.cpu))
            observeCPU = Distribution(nanoseconds: samples.map(\.observeCPU))
            observeCPUClosing = Distribution(nanoseconds: closing.map(\.observeCPU))
            recordCPU = Distribution(nanoseconds: samples.map(\.recordCPU))
            recordCPUClosing = Distribution(nanoseconds: closing.map(\.recordCPU))
            recordWallClosing = Distribution(nanoseconds: closing.map(\.recordWall))
            statsCPU = Distribution(nanoseconds: samples.map(\.statsCPU))
            let instances = Double(max(1, bench.count))
            cpuPerInstancePerSampleMicroseconds = sampleCPU.medianMicroseconds / instances
            cpuPerInstancePerPeriodMicroseconds = cpuPerPeriodMedianMilliseconds * 1000 / instances
            firstSampleCPUMilliseconds = Double(result.first.cpu) / 1e6
            firstSampleWallMilliseconds = Double(result.first.wall) / 1e6
            breakdown = result.breakdown
            memoryAfterRun = result.memoryAfter
            self.memory = memory
        }

        func lines() -> [String] {
            func ms(_ microseconds: Double) -> String { String(format: "%.2f ms", microseconds / 1000) }
            func us(_ microseconds: Double) -> String { String(format: "%.1f µs", microseconds) }
            func dist(_ value: Distribution) -> String {
                "median \(ms(value.medianMicroseconds)), p99 \(ms(value.p99Microseconds))"
            }
            let perInstance = Double(max(1, count))
            var lines = [
                "instances: \(count), cgroup \(layout.rawValue) (\(cgroupLayout)); \(periods) measured periods of \(intervalSeconds) s after one warm-up, a sample every \(sampleSeconds) s (\(intervalSeconds / sampleSeconds) per period), instances probed every \(instanceSampleSeconds) s; outbox \(outboxDrained ? "drained after each period" : "not drained"), \(outboxPendingAtEnd) events pending at the end, database \(databaseBytes / 1024) KiB on \(databaseFilesystem) (synchronous FULL, WAL); generated files on \(treeFilesystem), in \(String(format: "%.1f", generationSeconds)) s",
                String(
                    format: "CPU per period for %d instances: %.1f ms (target < %.0f ms) — %.3f %% of one core; max %.1f ms; process CPU %.1f ms; wall %.1f ms",
                    count, cpuPerPeriodMedianMilliseconds, targetCPUPerPeriodMilliseconds, percentOfOneCore,
                    cpuPerPeriodMaxMilliseconds, processCPUPerPeriodMedianMilliseconds, wallPerPeriodMedianMilliseconds),
                "CPU per instance: \(us(cpuPerInstancePerSampleMicroseconds)) per sample (median sample), \(us(cpuPerInstancePerPeriodMicroseconds)) per period",
                "sample CPU: \(dist(sampleCPU)); wall: \(dist(sampleWall))",
                "closing sample (\(eventsPerClosingSample) events): CPU \(dist(closingSampleCPU)); wall \(dist(closingSampleWall))",
                "other samples CPU: \(dist(otherSampleCPU))",
                "scan+probe (InstanceSampling.observe) CPU: \(dist(observeCPU)) (\(us(observeCPU.medianMicroseconds / perInstance)) per instance); closing \(dist(observeCPUClosing))",
                "record (metering + SQLite) CPU: \(dist(recordCPU)); closing \(dist(recordCPUClosing)) (\(us(recordCPUClosing.medianMicroseconds / perInstance)) per instance), closing wall \(dist(recordWallClosing))",
                "outbox stats CPU: \(dist(statsCPU))",
                String(format: "first sample (every baseline and checkpoint): CPU %.2f ms, wall %.2f ms", firstSampleCPUMilliseconds, firstSampleWallMilliseconds),
            ]
            if let breakdown {
                lines.append(
                    "closing sample, step by step (median CPU of \(breakdown.repetitions), each on its own): directory scan \(ms(breakdown.scanMicroseconds)), registry replaceFiles \(ms(breakdown.registryReplaceMicroseconds)), registry.instances \(ms(breakdown.registryInstancesMicroseconds)), probes \(ms(breakdown.probeMicroseconds)) (\(us(breakdown.probeMicroseconds / perInstance)) per instance), readings \(ms(breakdown.readingsMicroseconds)), removed-instance check \(ms(breakdown.removedCheckMicroseconds)), engine \(ms(breakdown.engineMicroseconds)), encode events \(ms(breakdown.encodeEventsMicroseconds)), encode checkpoints \(ms(breakdown.encodeCheckpointsMicroseconds))"
                )
                let observeParts = breakdown.scanMicroseconds + breakdown.registryReplaceMicroseconds
                    + breakdown.registryInstancesMicroseconds + breakdown.probeMicroseconds + breakdown.readingsMicroseconds
                    + breakdown.removedCheckMicroseconds
                let recordParts = breakdown.engineMicroseconds + breakdown.encodeEventsMicroseconds
                    + breakdown.encodeCheckpointsMicroseconds
                lines.append(
                    "  observe not covered by the steps above (gauges, logging state, bookkeeping): \(ms(observeCPUClosing.medianMicroseconds - observeParts)); record not covered (SQLite transaction and the recorder's own work): \(ms(recordCPUClosing.medianMicroseconds - recordParts))"
                )
            }
            lines.append(
                "memory after the run: RssAnon \(memoryAfterRun.rssAnonKilobytes) kB, VmRSS \(memoryAfterRun.vmRSSKilobytes) kB, RssFile \(memoryAfterRun.rssFileKilobytes) kB, VmHWM \(memoryAfterRun.vmHWMKilobytes) kB")
            if let memory {
                for point in memory.points {
                    lines.append(
                        "memory at \(point.count) instances: RssAnon \(point.status.rssAnonKilobytes) kB, VmRSS \(point.status.vmRSSKilobytes) kB, RssFile \(point.status.rssFileKilobytes) kB, VmHWM \(point.status.vmHWMKilobytes) kB")
                }
                let segments = memory.bytesPerInstanceBySegment.map { String(format: "%.0f", $0) }.joined(separator: ", ")
                let fit = String(
                    format: "the farthest point is %.0f kB from the line, %.1f %% of the %.0f kB growth",
                    memory.maxDeviationBytes / 1024, memory.maxDeviationBytes / max(1, memory.growthBytes) * 100,
                    memory.growthBytes / 1024)
                let verdict = (memory.linear ? "linear: " : "not linear (limit 5 %): ") + fit
                lines.append(
                    "memory per instance: \(String(format: "%.0f", memory.bytesPerInstance)) bytes of RssAnon (least squares); by segment: \(segments) bytes; \(verdict)")
            }
            return lines
        }
    }
}

/// The bench could not run as designed: the generated host was not read as expected.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A host with `count` VMs under `root`, laid out as the probes read a real one: the cgroup files
/// of the chosen layout, sys/class/net links to sys/devices/virtual/net, sparse images under
/// var/lib/libvirt/images, and a manifest per VM in etc/hostmeter/instances.d.
struct GeneratedHost {
    let root: String
    let layout: InstanceBench.Layout
    let count: Int

    var manifests: String { root + "/etc/hostmeter/instances.d" }

    static func name(_ index: Int) -> String {
        let digits = String(index)
        return "vm-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    static func cgroup(_ index: Int) -> String { "machine.slice/\(name(index)).scope" }

    static func image(_ index: Int) -> String { "/var/lib/libvirt/images/\(name(index)).img" }

    init(root: String, layout: InstanceBench.Layout, count: Int) throws {
        self.root = root
        self.layout = layout
        self.count = count
        try Self.mkdir(root + "/proc/self")
        try Self.mkdir(manifests)
        try Self.mkdir(root + "/var/lib/libvirt/images")
        try Self.mkdir(root + "/sys/class/net")
        switch layout {
        case .v2:
            try Self.put(root + "/proc/self/mountinfo", Self.mountinfoV2)
            try Self.mkdir(root + "/sys/fs/cgroup/machine.slice")
            try Self.put(root + "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        case .v1:
            try Self.put(root + "/proc/self/mountinfo", Self.mountinfoV1)
            for controller in ["cpu,cpuacct", "memory", "blkio"] { try Self.mkdir(root + "/sys/fs/cgroup/\(controller)/machine.slice") }
            for link in ["cpu", "cpuacct"] {
                guard symlink("cpu,cpuacct", root + "/sys/fs/cgroup/" + link) == 0 else {
                    throw BenchFailure("symlink \(link): errno \(errno)")
                }
            }
        }
        for index in 0..<count {
            let name = Self.name(index)
            let cgroup = Self.cgroup(index)
            switch layout {
            case .v2:
                let directory = root + "/sys/fs/cgroup/" + cgroup
                try Self.mkdir(directory)
                try Self.put(directory + "/memory.max", index % 3 == 0 ? "max\n" : "\(UInt64(index % 8 + 2) << 30)\n")
                try Self.put(
                    directory + "/io.stat",
                    "252:16 rbytes=\(734_003_200 + index) wbytes=\(1_073_741_824 + index) rios=10240 wios=4096 dbytes=0 dios=0\n")
            case .v1:
                try Self.mkdir(root + "/sys/fs/cgroup/cpu,cpuacct/" + cgroup)
                try Self.mkdir(root + "/sys/fs/cgroup/memory/" + cgroup)
                try Self.mkdir(root + "/sys/fs/cgroup/blkio/" + cgroup)
                try Self.put(
                    root + "/sys/fs/cgroup/memory/\(cgroup)/memory.limit_in_bytes",
                    index % 3 == 0 ? "9223372036854771712\n" : "\(UInt64(index % 8 + 2) << 30)\n")
                let read = 734_003_200 + index
                let write = 1_073_741_824 + index
                try Self.put(
                    root + "/sys/fs/cgroup/blkio/\(cgroup)/blkio.throttle.io_service_bytes_recursive",
                    "252:16 Read \(read)\n252:16 Write \(write)\n252:16 Sync \(write)\n252:16 Async \(read)\n252:16 Discard 0\n252:16 Total \(read + write)\nTotal \(read + write)\n"
                )
            }
            let tap = "tap\(index)"
            let device = root + "/sys/devices/virtual/net/" + tap
            try Self.mkdir(device + "/statistics")
            try Self.put(device + "/ifindex", "\(index + 10)\n")
            guard symlink("../../devices/virtual/net/" + tap, root + "/sys/class/net/" + tap) == 0 else {
                throw BenchFailure("symlink \(tap): errno \(errno)")
            }
            try Self.sparseImage(root + Self.image(index), blocks: index % 8 + 1)
            try Self.put(
                manifests + "/\(name).yaml",
                """
                instance_id: \(name)
                user_id: user-\(index % 97)
                org_id: org-\(index % 13)
                cgroup: \(cgroup)
                interfaces: [\(tap)]
                disks: [\(Self.image(index))]
                vcpus: \(index % 4 + 1)

                """)
        }
    }

    /// Rewrites every instance's changing counters for sample `index`: CPU time (0.1 to 0.4 of a
    /// CPU), memory in use, and tap bytes in both directions.
    func writeCounters(sample index: Int) throws {
        let k = UInt64(index)
        for instance in 0..<count {
            let i = UInt64(instance)
            let cgroup = Self.cgroup(instance)
            let usec = (i + 1) * 1_000_000 + k * (i % 4 + 1) * 500_000
            let memory = (UInt64(1) << 30) + (i % 8) * (256 << 20) + (k % 6) * (1 << 20)
            switch layout {
            case .v2:
                let directory = root + "/sys/fs/cgroup/" + cgroup
                let user = usec / 4 * 3
                try Self.put(
                    directory + "/cpu.stat",
                    "usage_usec \(usec)\nuser_usec \(user)\nsystem_usec \(usec - user)\ncore_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"
                )
                try Self.put(directory + "/memory.current", "\(memory)\n")
            case .v1:
                try Self.put(root + "/sys/fs/cgroup/cpu,cpuacct/\(cgroup)/cpuacct.usage", "\(usec * 1000 + i)\n")
                try Self.put(root + "/sys/fs/cgroup/memory/\(cgroup)/memory.usage_in_bytes", "\(memory)\n")
            }
            let statistics = root + "/sys/devices/virtual/net/tap\(instance)/statistics"
            try Self.put(statistics + "/rx_bytes", "\((i + 1) * 10_000 + k * (i % 7 + 1) * 250_000)\n")
            try Self.put(statistics + "/tx_bytes", "\((i + 1) * 20_000 + k * (i % 5 + 1) * 1_000_000)\n")
        }
    }

    static let mountinfoV2 = """
        22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
        26 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        28 22 0:5 / /dev rw,nosuid shared:8 - devtmpfs devtmpfs rw,size=4096k,nr_inodes=1048576,mode=755

        """

    static let mountinfoV1 = """
        18 61 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
        19 61 0:3 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
        20 61 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=8118196k,nr_inodes=2029549,mode=755
        24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
        25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
        27 24 0:23 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpuset
        28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpuacct,cpu
        29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
        30 24 0:26 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,blkio
        32 24 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
        61 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/centos-root rw,attr2,inode64,noquota

        """

    static func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `text` to `path` in place, keeping the inode as a kernel file's stays. Overwritten
    /// and then cut to length rather than opened with O_TRUNC: ext4 flushes a file truncated to 0
    /// and rewritten when it is closed (auto_da_alloc), which made every sample wait on the disk.
    static func put(_ path: String, _ text: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw BenchFailure("cannot open \(path): errno \(errno)") }
        defer { close(descriptor) }
        var text = text
        let length = text.utf8.count
        let written = text.withUTF8 { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard written == length, ftruncate(descriptor, off_t(length)) == 0 else {
            throw BenchFailure("cannot write \(path): errno \(errno)")
        }
    }

    /// A 20 GiB sparse image with `blocks` 4 KiB blocks written, so st_blocks is small and not 0.
    static func sparseImage(_ path: String, blocks: Int) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw BenchFailure("cannot create \(path): errno \(errno)") }
        defer { close(descriptor) }
        guard ftruncate(descriptor, 20 << 30) == 0 else { throw BenchFailure("cannot size \(path): errno \(errno)") }
        let block = [UInt8](repeating: 0xA5, count: 4096)
        for index in 0..<blocks {
            let written = block.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, 4096, off_t(index) << 26) }
            guard written == 4096 else { throw BenchFailure("cannot write \(path): errno \(errno)") }
        }
    }
}
