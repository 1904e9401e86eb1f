import ArgumentParser
import Foundation
import GPU
import Probes

/// `hostmeter-bench gpu`: hostmeter's integrated GPU utilization, one JSON line per interval, for
/// scripts/gpu-check.sh to set beside nvidia-smi's readings. Hidden: a check, not a benchmark.
struct GPUBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu", abstract: "Print integrated GPU utilization per interval as JSON lines.",
        shouldDisplay: false)

    @Option(help: "How long to sample, seconds.")
    var seconds = 20.0

    @Option(help: "Seconds between looks; each line covers one.")
    var interval = 1.0

    @Option(help: "The NVML library to load.")
    var library = NVMLLibrary.defaultPath

    func validate() throws {
        guard (0.1...86_400).contains(seconds) else { throw ValidationError("--seconds must be 0.1…86400") }
        guard (0.05...3_600).contains(interval), interval <= seconds else {
            throw ValidationError("--interval must be 0.05…3600 and at most --seconds")
        }
    }

    func run() throws {
        let nvml: NVMLLibrary
        switch NVMLLibrary.load(path: library) {
        case .loaded(let loaded): nvml = loaded
        case .noNVML(let reason):
            try printLine(["error": "no NVML: \(reason)"])
            throw ExitCode(3)
        case .failed(let error):
            try printLine(["error": error.description])
            throw ExitCode(1)
        }
        let sampler = GPUSampler(library: nvml)
        // The first look only starts each GPU's window; every later line covers one interval.
        _ = sampler.sample()
        let intervalNanos = UInt64(interval * 1e9)
        let start = HostClock.monotonicNanos()
        let looks = Int((seconds / interval).rounded(.down))
        for look in 1...max(looks, 1) {
            // Fixed ticks from the start, so the lines do not drift by the cost of a look.
            let due = start + UInt64(look) * intervalNanos
            let now = HostClock.monotonicNanos()
            if due > now { usleep(useconds_t(min((due - now) / 1000, UInt64(useconds_t.max)))) }
            try printLine(sampler.sample())
        }
    }

    private func printLine(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try encoder.encode(value))
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
