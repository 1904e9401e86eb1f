import Foundation
import GPU
import Metering
import Probes
import Testing

@Suite struct GPUSamplerTests {
    static let uuid0 = "GPU-11111111-2222-3333-4444-555555555555"
    static let uuid1 = "GPU-66666666-7777-8888-9999-000000000000"

    /// A utilization sequence over four looks, fed through the metering engine: busy nanoseconds
    /// and gpu_seconds (whole seconds, remainder carried) are checked to the nanosecond.
    @Test func utilizationSequenceGivesExactBusyTimeAndGPUSeconds() throws {
        let clock = TestClock()
        let header = "count 1\ngpu 0 \(Self.uuid0) NVIDIA H100 80GB HBM3\nmemory 0 85899345920 1073741824\n"
        // The ring keeps old samples: like NVML, the fake returns only those after lastSeen.
        var ring = [sampleEntries(from: 1_000_000, every: 500_000, values: [50, 50])]
        let fake = try FakeNVML(script: header + "samples 0 " + ring.joined(separator: " ") + "\n")
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        let configuration = MeterConfiguration(hostID: "host-a", intervalSeconds: 10)
        let identity = InstanceIdentity(instanceID: "host-a", userID: "operator")
        var state: MeterState?
        var events: [Int64] = []

        func look(after seconds: Double, samples: String?) throws -> GPUReading {
            clock.advance(seconds: seconds)
            if let samples { ring.append(samples) }
            try fake.write(header + "samples 0 " + ring.joined(separator: " ") + "\n")
            let snapshot = sampler.sample()
            var reading = InstanceReading(time: snapshot.time, bootID: "boot-1")
            for counter in snapshot.counters() {
                reading.counters[CounterSource(.gpuBusyNanoseconds, counter.uuid)] = counter.busyNanoseconds
            }
            let step = Meter.advance(state, with: reading, identity: identity, configuration: configuration)
            state = step.state
            events += step.events.map(\.metrics.gpuSeconds)
            #expect(step.gaps.isEmpty)
            return try #require(snapshot.gpus.first)
        }

        // First look (wall second …001): the ring's oldest samples only start the window.
        let first = try look(after: 1, samples: nil)
        #expect(first.busyNanoseconds == 0)
        #expect(first.utilizationPercent == nil)
        #expect(first.utilizationSource == .samples)
        #expect(first.name == "NVIDIA H100 80GB HBM3")
        #expect(first.memoryUsedBytes == 1_073_741_824)
        #expect(first.memoryTotalBytes == 85_899_345_920)

        // 4 × 0.5 s at 40, 100, 0, 75 % = 1.075 s busy over 2 s.
        let second = try look(after: 2, samples: sampleEntries(from: 2_000_000, every: 500_000, values: [40, 100, 0, 75]))
        #expect(second.busyNanoseconds == 1_075_000_000)
        #expect(second.utilizationPercent == 53.75)

        // 16 × 0.5 s at 30 % = 2.4 s; the look at …011 closes the period [001, 010).
        let third = try look(
            after: 8, samples: sampleEntries(from: 4_000_000, every: 500_000, values: Array(repeating: 30, count: 16)))
        #expect(third.busyNanoseconds == 3_475_000_000)
        #expect(third.utilizationPercent == 30)
        #expect(events == [3])
        #expect(state?.gpuCarryNanos == 475_000_000)

        // 20 × 0.5 s at 55 % = 5.5 s; with the 0.475 s carried: 5 s billed, 0.975 s carried.
        let fourth = try look(
            after: 10, samples: sampleEntries(from: 12_000_000, every: 500_000, values: Array(repeating: 55, count: 20)))
        #expect(fourth.busyNanoseconds == 8_975_000_000)
        #expect(events == [3, 5])
        #expect(state?.gpuCarryNanos == 975_000_000)

        // No new samples: the counter stands still and nothing is invented.
        let fifth = try look(after: 0.2, samples: nil)
        #expect(fifth.busyNanoseconds == 8_975_000_000)
        #expect(fifth.utilizationPercent == nil)
        #expect(fifth.error == nil)
    }

    /// The driver returns its whole ring each time, old samples included and in ring order after
    /// a wrap: only what is newer than the last counted sample is counted.
    @Test func wrappedRingIsNotCountedTwice() throws {
        let clock = TestClock()
        let base = "count 1\ngpu 0 \(Self.uuid0) Fake\nignore_last_seen 0\n"
        let fake = try FakeNVML(script: base + "samples 0 1000000:10 2000000:20 3000000:30 4000000:40\n")
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        // The first look only starts the window, at the newest sample.
        #expect(sampler.sample().gpus[0].busyNanoseconds == 0)

        clock.advance(seconds: 2)
        // The ring wrapped: the two newest samples overwrote the two oldest, and the driver
        // returns it from its write position, one old entry twice.
        try fake.write(base + "samples 0 5000000:100 6000000:50 3000000:30 4000000:40 4000000:40\n")
        let second = sampler.sample().gpus[0]
        #expect(second.busyNanoseconds == 1_000_000_000 + 500_000_000)
        #expect(second.utilizationPercent == 75)

        // The same ring again: nothing new.
        clock.advance(seconds: 1)
        let third = sampler.sample().gpus[0]
        #expect(third.busyNanoseconds == 1_500_000_000)
    }

    /// Two GPUs with their own sequences; counters are keyed by UUID.
    @Test func twoGPUsAreCountedApart() throws {
        let clock = TestClock()
        func script(_ extra0: String, _ extra1: String) -> String {
            """
            count 2
            gpu 0 \(Self.uuid0) NVIDIA A100-SXM4-40GB
            gpu 1 \(Self.uuid1) NVIDIA A100-SXM4-40GB
            samples 0 1000000:0 \(extra0)
            samples 1 1000000:0 \(extra1)
            power 0 312500
            power 1 61000
            energy 0 123456789
            temperature 0 64
            temperature 1 38
            mig 0 0 0
            mig 1 0 1
            memory 0 42949672960 21474836480
            memory 1 42949672960 0
            """
        }
        let fake = try FakeNVML(script: script("", ""))
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        _ = sampler.sample()
        clock.advance(seconds: 1)
        try fake.write(script("1250000:100 1500000:100 1750000:100 2000000:100", "1500000:10 2000000:30"))
        let snapshot = sampler.sample()
        #expect(snapshot.gpus.count == 2)
        #expect(snapshot.counters().map(\.uuid) == [Self.uuid0, Self.uuid1])
        #expect(snapshot.counters().map(\.busyNanoseconds) == [1_000_000_000, 200_000_000])
        let gpu0 = snapshot.gpus[0]
        let gpu1 = snapshot.gpus[1]
        #expect(gpu0.utilizationPercent == 100)
        #expect(gpu1.utilizationPercent == 20)
        #expect(gpu0.powerWatts == 312.5)
        #expect(gpu0.energyJoules == 123_456.789)
        #expect(gpu1.energyJoules == nil)
        #expect(gpu0.temperatureCelsius == 64)
        #expect(gpu0.migMode == MIGMode(enabled: false, pendingEnabled: false))
        #expect(gpu1.migMode == MIGMode(enabled: false, pendingEnabled: true))
        #expect(gpu0.error == nil && gpu1.error == nil)

        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(snapshot)) as? [String: Any]
        let gpus = try #require(json?["gpus"] as? [[String: Any]])
        #expect(
            Set(gpus[0].keys) == [
                "index", "uuid", "name", "utilization_percent", "utilization_source", "busy_ns", "memory_used_bytes",
                "memory_total_bytes", "power_watts", "energy_joules", "temperature_celsius", "mig_mode", "lost", "error",
            ])
        #expect(gpus[0]["uuid"] as? String == Self.uuid0)
        #expect(gpus[0]["utilization_percent"] as? Double == 100)
        #expect(gpus[0]["memory_used_bytes"] as? Int == 21_474_836_480)
        #expect(gpus[1]["mig_mode"] as? String == "disabled (pending enabled)")
        #expect(gpus[1]["energy_joules"] is NSNull)
        #expect(gpus[1]["lost"] as? Bool == false)
        #expect(json?["error"] is NSNull)
    }

    /// GPU 0 falls off the bus mid-run: it is reported lost and skipped, GPU 1 keeps counting,
    /// and GPU 0's counter resumes where it stopped when it comes back.
    @Test func lostGPUIsReportedAndTheOthersContinue() throws {
        let clock = TestClock()
        var ring0 = "1000000:0"
        var ring1 = "1000000:0"
        func script(lost: Bool) -> String {
            "count 2\ngpu 0 \(Self.uuid0) A\ngpu 1 \(Self.uuid1) B\nsamples 0 \(ring0)\nsamples 1 \(ring1)\n"
                + (lost ? "lost 0\n" : "")
        }
        let fake = try FakeNVML(script: script(lost: false))
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        _ = sampler.sample()

        clock.advance(seconds: 1)
        ring0 += " 2000000:50"
        ring1 += " 2000000:50"
        try fake.write(script(lost: false))
        #expect(sampler.sample().counters().map(\.busyNanoseconds) == [500_000_000, 500_000_000])

        clock.advance(seconds: 1)
        ring0 += " 3000000:100"
        ring1 += " 3000000:100"
        try fake.write(script(lost: true))
        let during = sampler.sample()
        #expect(during.gpus.count == 2)
        #expect(during.gpus[0].lost)
        #expect(during.gpus[0].uuid == Self.uuid0)
        #expect(during.gpus[0].busyNanoseconds == nil)
        #expect(during.gpus[0].error == "nvmlDeviceGetHandleByIndex_v2: fake: GPU is lost (NVML error 15)")
        #expect(!during.gpus[1].lost)
        #expect(during.gpus[1].error == nil)
        #expect(during.counters().map(\.uuid) == [Self.uuid1])
        #expect(during.counters().map(\.busyNanoseconds) == [1_500_000_000])

        // Back (same UUID): the samples it missed are counted now, the counter never went back.
        clock.advance(seconds: 1)
        ring0 += " 4000000:0"
        ring1 += " 4000000:0"
        try fake.write(script(lost: false))
        let after = sampler.sample()
        #expect(after.counters().map(\.busyNanoseconds) == [1_500_000_000, 1_500_000_000])
    }

    /// A GPU lost between two calls about it (handle fine, utilization lost) is also skipped.
    @Test func lostInTheMiddleOfAReading() throws {
        let fake = try FakeNVML(script: "count 2\nsamples 0 1:0\nsamples 1 1:0\nfail samples 0 15\npower 1 1000\n")
        defer { fake.remove() }
        let snapshot = GPUSampler(library: try fake.load(), clock: TestClock().clock).sample()
        #expect(snapshot.gpus[0].lost)
        #expect(snapshot.gpus[0].uuid == "GPU-fake-0")
        #expect(snapshot.gpus[0].name == "Fake GPU")
        #expect(snapshot.gpus[0].error == "nvmlDeviceGetSamples: fake: GPU is lost (NVML error 15)")
        #expect(snapshot.gpus[1].powerWatts == 1)
        #expect(snapshot.counters().map(\.uuid) == ["GPU-fake-1"])
    }

    /// Without nvmlDeviceGetSamples (an optional symbol) the rate is held over the interval.
    @Test func missingSamplesSymbolFallsBackToRates() throws {
        let clock = TestClock()
        let fake = try FakeNVML(defines: ["FAKE_OMIT_nvmlDeviceGetSamples"], script: "count 1\nrate 0 40\n")
        defer { fake.remove() }
        let library = try fake.load()
        #expect(library.missingOptionalSymbols == ["nvmlDeviceGetSamples"])
        let sampler = GPUSampler(library: library, clock: clock.clock)
        let first = sampler.sample().gpus[0]
        #expect(first.busyNanoseconds == 0)
        #expect(first.utilizationSource == .rates)
        #expect(first.utilizationPercent == 40)
        #expect(first.error == nil)

        clock.advance(seconds: 2.5)
        try fake.write("count 1\nrate 0 33\n")
        let second = sampler.sample().gpus[0]
        // 33 % of 2.5 s, floored to the nanosecond.
        #expect(second.busyNanoseconds == 825_000_000)
        clock.advance(nanoseconds: 7)
        #expect(sampler.sample().gpus[0].busyNanoseconds == 825_000_002)
    }

    /// A figure the device does not support is nil and no error; another failure is reported with
    /// nvmlErrorString's text and the rest of the reading stands.
    @Test func perCallErrorsCarryNVMLsText() throws {
        let fake = try FakeNVML(script: "count 1\nsamples 0 1:0\ntemperature 0 51\nfail power 0 4\nfail name 0 999\n")
        defer { fake.remove() }
        let gpu = GPUSampler(library: try fake.load(), clock: TestClock().clock).sample().gpus[0]
        #expect(!gpu.lost)
        #expect(gpu.powerWatts == nil)
        #expect(gpu.name == nil)
        #expect(gpu.temperatureCelsius == 51)
        #expect(gpu.memoryUsedBytes == nil)
        #expect(gpu.migMode == nil)
        #expect(
            gpu.error
                == "nvmlDeviceGetName: fake: Unknown Error (NVML error 999); "
                + "nvmlDeviceGetPowerUsage: fake: Insufficient Permissions (NVML error 4)")
    }

    @Test func deviceCountFailureIsTheSnapshotsError() throws {
        let fake = try FakeNVML(script: "count_rc 9\n")
        defer { fake.remove() }
        let snapshot = GPUSampler(library: try fake.load(), clock: TestClock().clock).sample()
        #expect(snapshot.gpus.isEmpty)
        #expect(snapshot.error == "nvmlDeviceGetCount_v2: fake: Driver Not Loaded (NVML error 9)")
    }

    /// MIG enabled: NVML gives no utilization for the GPU; no busy counter, no error.
    @Test func migEnabledHasNoUtilization() throws {
        let fake = try FakeNVML(script: "count 1\nmig 0 1 1\nmemory 0 100 40\npower 0 90000\n")
        defer { fake.remove() }
        let snapshot = GPUSampler(library: try fake.load(), clock: TestClock().clock).sample()
        let gpu = snapshot.gpus[0]
        #expect(gpu.migMode == MIGMode(enabled: true, pendingEnabled: true))
        #expect(gpu.utilizationPercent == nil)
        #expect(gpu.busyNanoseconds == nil)
        #expect(gpu.memoryUsedBytes == 40)
        #expect(gpu.powerWatts == 90)
        #expect(gpu.error == nil)
        #expect(snapshot.counters().isEmpty)
    }

    /// Samples whose values come as doubles (nvmlValueType_t 0) are read from the union's dVal.
    @Test func doubleValuedSamples() throws {
        let clock = TestClock()
        let fake = try FakeNVML(script: "count 1\nsample_type 0 0\nsamples 0 1000000:0\n")
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        _ = sampler.sample()
        clock.advance(seconds: 1)
        try fake.write("count 1\nsample_type 0 0\nsamples 0 1000000:0 2000000:12.5\n")
        #expect(sampler.sample().gpus[0].busyNanoseconds == 125_000_000)
    }

    /// NVML stamps samples with the wall clock. When it steps back, counting restarts from the
    /// newest sample stamped before now; samples stamped before the step are never counted again.
    @Test func wallClockSteppingBackDoesNotStallCounting() throws {
        let clock = TestClock()
        let now = UInt64(TestClock.startWallNanos / 1000)
        func ring(_ entries: [(UInt64, Int)]) -> String {
            "count 1\nsamples 0 " + entries.map { "\($0.0):\($0.1)" }.joined(separator: " ") + "\n"
        }
        let old = [(now - 1_000_000, 0), (now, 100)]
        let fake = try FakeNVML(script: ring(old))
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: clock.clock)
        _ = sampler.sample()
        clock.advance(seconds: 1)
        #expect(sampler.sample().gpus[0].busyNanoseconds == 0)

        // The wall clock goes back an hour; new samples carry the new time.
        clock.stepWall(bySeconds: -3600)
        let back = now - 3_600_000_000 + 1_000_000
        try fake.write(ring(old + [(back, 100), (back + 1_000_000, 100)]))
        let restarted = sampler.sample().gpus[0]
        #expect(restarted.busyNanoseconds == 0)
        #expect(restarted.error == nil)

        clock.advance(seconds: 1)
        try fake.write(ring(old + [(back, 100), (back + 1_000_000, 100), (back + 2_000_000, 50)]))
        #expect(sampler.sample().gpus[0].busyNanoseconds == 500_000_000)
    }

    /// Looks from many tasks at once: each sample is counted exactly once.
    @Test func concurrentLooksCountEachSampleOnce() async throws {
        let fake = try FakeNVML(script: "count 1\nsamples 0 100000:0\nignore_last_seen 0\n")
        defer { fake.remove() }
        let sampler = GPUSampler(library: try fake.load(), clock: TestClock().clock)
        _ = sampler.sample()
        // 99 new samples of 0.1 s, every other one at 100 %: 50 × 0.1 s busy.
        let values = (1...100).map { Double($0 % 2 == 0 ? 100 : 0) }
        let entries = sampleEntries(from: 100_000, every: 100_000, values: values)
        try fake.write("count 1\nsamples 0 \(entries)\nignore_last_seen 0\n")
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { _ = sampler.sample() } }
        }
        #expect(sampler.sample().gpus[0].busyNanoseconds == 5_000_000_000)
    }
}
