import Synchronization

/// The one contract of every reader of the machine: the host collectors (`cpu`, `memory`, …), the
/// GPU reader and the instance prober. Each fills its own part of a `Sample`.
///
/// `collect` throws when the collector got nothing; a collector that got part of its data (one
/// filesystem of several could not be stat'ed) stores what it got and records failures for the rest.
/// "Nothing of this kind here" (no disks) is an empty value, not an error. `CollectorRun.run`
/// times every collector and isolates its failure, the way node_exporter's scraper does.
public protocol Collector<Sample>: Sendable {
    associatedtype Sample
    /// The collector's name: its log field and the `collector` label of its metrics.
    var name: String { get }
    func collect(into sample: inout Sample) throws(ProbeError)
}

/// A host collector: one source of `HostSample` data, selected by its `CollectorName` (the
/// `collectors` configuration key).
public protocol HostCollector: Collector where Sample == HostSample {
    var kind: CollectorName { get }
}

extension HostCollector {
    public var name: String { kind.rawValue }
}

/// How long one collector took in a sample and whether it delivered: exported per collector as
/// `hostmeter_collector_duration_seconds` and `hostmeter_collector_success`, as node_exporter exports
/// `node_scrape_collector_duration_seconds` and `_success`.
public struct CollectorReport: Sendable, Equatable {
    public var collector: String
    public var nanoseconds: UInt64
    /// The error that kept it from delivering anything; nil when it delivered.
    public var error: ProbeError?

    public init(collector: String, nanoseconds: UInt64, error: ProbeError? = nil) {
        self.collector = collector
        self.nanoseconds = nanoseconds
        self.error = error
    }

    public var succeeded: Bool { error == nil }
}

/// Runs collectors in order, timing each on the monotonic clock and isolating its failure: a
/// collector that throws leaves the others to run.
public enum CollectorRun {
    public static func run<Sample>(
        _ collectors: [any Collector<Sample>], into sample: inout Sample
    ) -> [CollectorReport] {
        var reports: [CollectorReport] = []
        reports.reserveCapacity(collectors.count)
        for collector in collectors {
            let start = HostClock.monotonicNanos()
            var failure: ProbeError?
            do {
                try collector.collect(into: &sample)
            } catch {
                failure = error
            }
            reports.append(
                CollectorReport(collector: collector.name, nanoseconds: HostClock.monotonicNanos() - start, error: failure))
        }
        return reports
    }
}

/// The boot ID cannot change while a process lives (a reboot ends it), so it is read once; a
/// failed read is retried on the next sample.
final class BootCollector: HostCollector {
    let procFS: ProcFS
    private let known = Mutex<String?>(nil)

    init(procFS: ProcFS) { self.procFS = procFS }

    var kind: CollectorName { .boot }

    func collect(into sample: inout HostSample) throws(ProbeError) {
        if let bootID = known.withLock({ $0 }) {
            sample.bootID = bootID
            return
        }
        let bootID = try procFS.bootID()
        known.withLock { $0 = bootID }
        sample.bootID = bootID
    }
}

/// /proc/stat, kept open (`KeptPath`); 16 KiB holds it with a few dozen CPUs and their `intr` line.
struct CPUCollector: HostCollector {
    let file: KeptPath
    let userHZ: Int

    init(procFS: ProcFS, userHZ: Int) {
        file = KeptPath(procFS.path("stat"), capacity: 16 << 10)
        self.userHZ = userHZ
    }

    var kind: CollectorName { .cpu }
    func collect(into sample: inout HostSample) throws(ProbeError) {
        let userHZ = userHZ
        sample.cpu = try file.read { (bytes, path) throws(ProbeError) in try Stat.parse(bytes, userHZ: userHZ, path: path) }
    }
}

/// /proc/meminfo, kept open.
struct MemoryCollector: HostCollector {
    let file: KeptPath
    init(procFS: ProcFS) { file = KeptPath(procFS.path("meminfo")) }
    var kind: CollectorName { .memory }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.memory = try file.read(Meminfo.parse(_:path:)) }
}

/// /proc/net/dev, kept open: the network namespace is the one the agent opened it in, as before.
struct NetworkCollector: HostCollector {
    let file: KeptPath
    let interfaces: NameFilter

    init(procFS: ProcFS, interfaces: NameFilter) {
        file = KeptPath(procFS.path("net/dev"))
        self.interfaces = interfaces
    }

    var kind: CollectorName { .network }
    func collect(into sample: inout HostSample) throws(ProbeError) {
        sample.network = try file.read(NetDev.parse(_:path:)).filter { interfaces.selects($0.name) }
    }
}

/// /proc/loadavg, kept open.
struct LoadCollector: HostCollector {
    let file: KeptPath
    init(procFS: ProcFS) { file = KeptPath(procFS.path("loadavg"), capacity: 256) }
    var kind: CollectorName { .load }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.load = try file.read(LoadAvg.parse(_:path:)) }
}

/// /proc/uptime, kept open.
struct UptimeCollector: HostCollector {
    let file: KeptPath
    init(procFS: ProcFS) { file = KeptPath(procFS.path("uptime"), capacity: 256) }
    var kind: CollectorName { .uptime }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.uptime = try file.read(Uptime.parse(_:path:)) }
}
