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

extension InstanceBench {
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

    func breakdown(_ host: any BenchHost, sampling: InstanceSampling, recorder: MeteringRecorder, next: Int) throws
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
                    sampling.probe.map { probe in
                        sampling.keptFiles.probe(
                            probe, id: instance.manifest.instanceID,
                            target: InstanceTarget(
                                cgroupPath: instance.manifest.cgroup, interfaces: instance.manifest.interfaces,
                                disks: instance.manifest.disks))
                    } ?? InstanceProbeResult()
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
}
