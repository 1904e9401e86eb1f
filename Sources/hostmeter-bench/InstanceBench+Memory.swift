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
            if kernel { arguments.append("--kernel") }
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
}
