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

struct CPUCollector: HostCollector {
    let procFS: ProcFS
    let userHZ: Int
    var kind: CollectorName { .cpu }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.cpu = try procFS.stat(userHZ: userHZ) }
}

struct MemoryCollector: HostCollector {
    let procFS: ProcFS
    var kind: CollectorName { .memory }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.memory = try procFS.meminfo() }
}

struct NetworkCollector: HostCollector {
    let procFS: ProcFS
    let interfaces: NameFilter
    var kind: CollectorName { .network }
    func collect(into sample: inout HostSample) throws(ProbeError) {
        sample.network = try procFS.netDev().filter { interfaces.selects($0.name) }
    }
}

struct LoadCollector: HostCollector {
    let procFS: ProcFS
    var kind: CollectorName { .load }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.load = try procFS.loadAvg() }
}

struct UptimeCollector: HostCollector {
    let procFS: ProcFS
    var kind: CollectorName { .uptime }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.uptime = try procFS.uptime() }
}
