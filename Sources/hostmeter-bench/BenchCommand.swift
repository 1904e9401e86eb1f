import ArgumentParser
import Foundation
import Probes

/// `hostmeter-bench`: prints the cost of hostmeter's hot paths as JSON, for scripts/bench.sh.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostmeter-bench",
        abstract: "Measure hostmeter's hot paths and print the figures as JSON.",
        subcommands: [
            SampleBench.self, PeriodBench.self, OutboxBench.self, ThresholdBench.self, GPUBench.self, InstanceBench.self,
            InstanceAPIBench.self, OutboxDepthBench.self, FleetBench.self,
        ],
        defaultSubcommand: SampleBench.self
    )
}

/// Median and tail of a set of nanosecond measurements.
struct Distribution: Encodable {
    let medianMicroseconds: Double
    let p90Microseconds: Double
    let p99Microseconds: Double
    let minMicroseconds: Double

    init(nanoseconds: [UInt64]) {
        let sorted = nanoseconds.sorted()
        func percentile(_ p: Double) -> Double {
            let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
            return Double(sorted[index]) / 1000
        }
        medianMicroseconds = percentile(0.5)
        p90Microseconds = percentile(0.9)
        p99Microseconds = percentile(0.99)
        minMicroseconds = Double(sorted.first ?? 0) / 1000
    }

    enum CodingKeys: String, CodingKey {
        case medianMicroseconds = "median_us", p90Microseconds = "p90_us", p99Microseconds = "p99_us"
        case minMicroseconds = "min_us"
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    FileHandle.standardOutput.write(try encoder.encode(value))
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// One full host sample (every collector), repeated.
struct SampleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample", abstract: "Wall and CPU time of one full host sample.")

    @Option(help: "Measured iterations (after 100 warm-up ones).")
    var iterations = 5000

    @Option(help: "The procfs root to read.")
    var procRoot = "/proc"

    @Option(help: "The sysfs root to read.")
    var sysRoot = "/sys"

    struct Report: Encodable {
        let benchmark = "host_sample"
        let iterations: Int
        let collectors: [String]
        let failures: [String]
        let wall: Distribution
        let cpu: Distribution
        let perCollectorMedianMicroseconds: [String: Double]

        enum CodingKeys: String, CodingKey {
            case benchmark, iterations, collectors, failures, wall, cpu
            case perCollectorMedianMicroseconds = "per_collector_median_us"
        }
    }

    func validate() throws {
        guard (1...10_000_000).contains(iterations) else {
            throw ValidationError("--iterations must be between 1 and 10000000")
        }
    }

    func run() throws {
        let sampler = HostSampler(configuration: HostSamplerConfiguration(procRoot: procRoot, sysRoot: sysRoot))
        for _ in 0..<100 { _ = sampler.sample() }
        var wall: [UInt64] = []
        var cpu: [UInt64] = []
        var perCollector: [CollectorName: [UInt64]] = [:]
        wall.reserveCapacity(iterations)
        cpu.reserveCapacity(iterations)
        var last = sampler.sample()
        for _ in 0..<iterations {
            let cpuStart = HostClock.threadCPUNanos()
            let wallStart = HostClock.monotonicNanos()
            last = sampler.sample()
            wall.append(HostClock.monotonicNanos() - wallStart)
            cpu.append(HostClock.threadCPUNanos() - cpuStart)
            for timing in last.timings { perCollector[timing.collector, default: []].append(timing.nanoseconds) }
        }
        try printJSON(
            Report(
                iterations: iterations, collectors: last.succeeded.map(\.rawValue),
                failures: last.failures.map(\.description), wall: Distribution(nanoseconds: wall),
                cpu: Distribution(nanoseconds: cpu),
                perCollectorMedianMicroseconds: Dictionary(
                    uniqueKeysWithValues: perCollector.map { ($0.key.rawValue, Distribution(nanoseconds: $0.value).medianMicroseconds) })))
    }
}
