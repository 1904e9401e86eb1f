import Synchronization

/// One source of host data. Each collector fills its own part of a `HostSample`.
///
/// `collect` throws when the collector got nothing; a collector that got part of its data (one
/// filesystem of several could not be stat'ed) stores what it got and appends failures for the rest.
/// "Nothing of this kind here" (no disks) is an empty value, not an error.
public protocol Collector: Sendable {
    var name: CollectorName { get }
    func collect(into sample: inout HostSample) throws(ProbeError)
}

/// The boot ID cannot change while a process lives (a reboot ends it), so it is read once; a
/// failed read is retried on the next sample.
final class BootCollector: Collector {
    let procFS: ProcFS
    private let known = Mutex<String?>(nil)

    init(procFS: ProcFS) { self.procFS = procFS }

    var name: CollectorName { .boot }

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

struct CPUCollector: Collector {
    let procFS: ProcFS
    let userHZ: Int
    var name: CollectorName { .cpu }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.cpu = try procFS.stat(userHZ: userHZ) }
}

struct MemoryCollector: Collector {
    let procFS: ProcFS
    var name: CollectorName { .memory }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.memory = try procFS.meminfo() }
}

struct NetworkCollector: Collector {
    let procFS: ProcFS
    let interfaces: NameFilter
    var name: CollectorName { .network }
    func collect(into sample: inout HostSample) throws(ProbeError) {
        sample.network = try procFS.netDev().filter { interfaces.selects($0.name) }
    }
}

struct LoadCollector: Collector {
    let procFS: ProcFS
    var name: CollectorName { .load }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.load = try procFS.loadAvg() }
}

struct UptimeCollector: Collector {
    let procFS: ProcFS
    var name: CollectorName { .uptime }
    func collect(into sample: inout HostSample) throws(ProbeError) { sample.uptime = try procFS.uptime() }
}
