import Foundation
import HostMeterAgent
import Logging
import Probes
import RuntimeState
import Testing

/// Every reader of the machine goes through the one collector contract: each host collector, the
/// instance prober (and the GPU reader, in GPUTests' fake-NVML runs) is timed and its success
/// reported, and the reports reach /metrics as node_exporter's collector duration and success do.
@Suite struct MachineReaderTests {
    static func reader(procRoot: String, instanceSampleSeconds: Int = 3600) -> MachineReader {
        MachineReader(
            host: HostSampler(configuration: HostSamplerConfiguration(procRoot: procRoot, sysRoot: "/sys")),
            gpus: nil,
            instances: InstanceSampling(
                registry: InstanceRegistry(), directory: nil, probe: nil, logger: Logger(label: "test")),
            instanceSampleSeconds: instanceSampleSeconds)
    }

    @Test func everyCollectorIsReportedWithItsSuccess() {
        var reader = Self.reader(procRoot: "/nonexistent-proc-root")
        let sample = reader.read()
        let names = CollectorName.allCases.map(\.rawValue) + ["instances"]
        #expect(sample.reports.map(\.collector) == names)
        // Nothing of /proc could be read: every /proc collector failed, naming its file; the
        // instances (none registered) were probed.
        for report in sample.reports where report.collector != "instances" && report.collector != "filesystem" {
            #expect(!report.succeeded, "\(report.collector)")
            #expect("\(report.error.map { "\($0)" } ?? "")".contains("/nonexistent-proc-root"), "\(report)")
        }
        #expect(sample.reports.last?.succeeded == true)
        #expect(sample.instances != nil)
        #expect(sample.durationNanos >= sample.reports.reduce(0) { $0 + $1.nanoseconds })

        var real = Self.reader(procRoot: "/proc")
        let good = real.read()
        #expect(good.reports.first { $0.collector == "cpu" }?.succeeded == true)
        #expect(good.reports.first { $0.collector == "boot" }?.succeeded == true)
    }

    @Test func instancesAreProbedOncePerSlot() {
        var reader = Self.reader(procRoot: "/proc", instanceSampleSeconds: 3600)
        #expect(reader.read().reports.contains { $0.collector == "instances" })
        // The same hour-long slot (unless this test straddles the hour): not probed again.
        let second = reader.read()
        let hourTurned = second.host.time.wallNanos % 3_600_000_000_000 < 5_000_000_000
        if !hourTurned {
            #expect(!second.reports.contains { $0.collector == "instances" })
            #expect(second.instances == nil)
        }
    }

    @Test func reportsReachTheExposition() {
        let metrics = AgentMetrics()
        metrics.recordSample(
            wallNanos: 1_800_000_000_000_000_000, failures: ["disk"], durationNanos: 1_000, events: [:], periods: 0,
            gaps: [],
            collectors: [
                (name: "cpu", nanoseconds: 250_000, succeeded: true), (name: "disk", nanoseconds: 1_000, succeeded: false),
                (name: "instances", nanoseconds: 2_000_000, succeeded: true),
            ])
        var buffer: [UInt8] = []
        metrics.registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text.contains(#"hostmeter_collector_duration_seconds{collector="cpu"} 0.00025"#), "\(text)")
        #expect(text.contains(#"hostmeter_collector_success{collector="cpu"} 1"#))
        #expect(text.contains(#"hostmeter_collector_success{collector="disk"} 0"#))
        #expect(text.contains(#"hostmeter_collector_duration_seconds{collector="instances"} 0.002"#))
        #expect(text.contains(#"hostmeter_collector_errors_total{collector="disk"} 1"#))
    }
}
