import Probes
import Testing
import UsageModel

@testable import Metering

/// How a VM's probe result becomes what metering bills: taps flipped, generations carried, memory
/// against the cgroup's limit, disks summed, GPUs assigned by index or UUID, vCPUs as capacity.
@Suite struct InstanceReadingTests {
    let time = SampleTime(wallNanos: 1_800_000_000_000_000_000, bootNanos: 5_000_000_000_000)

    func manifest(disks: [String] = [], gpus: [String] = [], vcpus: Int = 4) throws -> InstanceManifest {
        try InstanceManifest(
            instanceID: "vm-1", userID: "alice", cgroup: "machine.slice/vm-1.scope", interfaces: ["tap1"], disks: disks,
            gpus: gpus, vcpus: vcpus)
    }

    @Test func tapsAreFlippedAndCarryTheirIfindexAsGeneration() throws {
        let probe = InstanceProbeResult(
            cgroup: CgroupUsage(cpuNanoseconds: 7_000, memoryBytes: 1_000, memoryLimitBytes: 4_000, generation: 42),
            interfaces: [InterfaceCounters(name: "tap1", rxBytes: 300, txBytes: 900, ifindex: 17)])
        let reading = InstanceReading.instance(
            probe, manifest: try manifest(), time: time, bootID: "b", hostMemoryTotalBytes: 64_000)
        // Host rx on a tap is what the guest sent.
        #expect(reading.counters[CounterSource(.egressBytes, "tap1")] == 300)
        #expect(reading.counters[CounterSource(.ingressBytes, "tap1")] == 900)
        #expect(reading.generations["tap1"] == 17)
        #expect(reading.counters[CounterSource(.cpuNanoseconds, InstanceReading.cgroupSource)] == 7_000)
        #expect(reading.generations[InstanceReading.cgroupSource] == 42)
        #expect(reading.cpuCapacity == 4)
        #expect(reading.memoryUsedBytes == 1_000)
        #expect(reading.memoryTotalBytes == 4_000)
        #expect(reading.storageUsedBytes == nil)
    }

    @Test func withoutACgroupLimitMemoryIsAgainstTheHostsAndDisksAreSummed() throws {
        let probe = InstanceProbeResult(
            cgroup: CgroupUsage(cpuNanoseconds: 1, memoryBytes: 1_000, memoryLimitBytes: nil, generation: 1),
            disks: [DiskUsage(path: "/a.img", allocatedBytes: 4_096, kind: .file),
                    DiskUsage(path: "/dev/vg/b", allocatedBytes: 10_737_418_240, kind: .blockDevice)])
        let reading = InstanceReading.instance(
            probe, manifest: try manifest(disks: ["/a.img", "/dev/vg/b"]), time: time, bootID: "b",
            hostMemoryTotalBytes: 64_000)
        #expect(reading.memoryTotalBytes == 64_000)
        #expect(reading.storageUsedBytes == 10_737_422_336)
    }

    @Test func visibleGPUsFeedTheirCountersAndUnseenOnesArePassedThrough() throws {
        let visible = [
            VisibleGPU(index: 0, uuid: "GPU-aaa", busyNanoseconds: 5_000),
            VisibleGPU(index: 1, uuid: "GPU-bbb", busyNanoseconds: nil),  // lost: visible, no figure
        ]
        let reading = InstanceReading.instance(
            InstanceProbeResult(cgroup: CgroupUsage(cpuNanoseconds: 1, generation: 1)),
            manifest: try manifest(gpus: ["0", "GPU-bbb", "GPU-passed-through", "7"]), time: time, bootID: "b",
            hostMemoryTotalBytes: nil, gpus: visible)
        #expect(reading.counters[CounterSource(.gpuBusyNanoseconds, "GPU-aaa")] == 5_000)
        #expect(reading.counters[CounterSource(.gpuBusyNanoseconds, "GPU-bbb")] == nil)
        #expect(reading.assignedGPUs == 2)
    }

    @Test func cpuPercentAvgIsAgainstTheInstancesVCPUs() throws {
        let identity = InstanceIdentity(instanceID: "vm-1", userID: "alice")
        let configuration = MeterConfiguration(hostID: "h", intervalSeconds: 30)
        func reading(_ seconds: UInt64, cpu: UInt64) throws -> InstanceReading {
            InstanceReading.instance(
                InstanceProbeResult(cgroup: CgroupUsage(cpuNanoseconds: cpu, generation: 1)),
                manifest: try manifest(vcpus: 4),
                time: SampleTime(wallNanos: Int64(1_800_000_000 + seconds) * 1_000_000_000, bootNanos: seconds * 1_000_000_000),
                bootID: "b", hostMemoryTotalBytes: nil)
        }
        var state = Meter.advance(nil, with: try reading(0, cpu: 0), identity: identity, configuration: configuration).state
        // 60 CPU seconds over 30 s on 4 vCPUs: 50 %.
        let step = Meter.advance(
            state, with: try reading(30, cpu: 60_000_000_000), identity: identity, configuration: configuration)
        state = step.state
        let event = try #require(step.events.first)
        #expect(event.metrics.cpuSeconds == 60)
        #expect(event.metrics.cpuPercentAvg == 50)
    }
}
