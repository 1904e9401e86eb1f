import GPU
import Metering
import Outbox
import Probes

/// The gauge metrics rules may watch beside a period's usage, from the sample that closed it.
enum ThresholdGauges {
    static func values(sample: HostSample, gpus: GPUSnapshot?, outbox: OutboxStats?) -> [ThresholdMetric: Double] {
        var values: [ThresholdMetric: Double] = [:]
        // The fullest metered filesystem: a rule on it fires when any one is past the line.
        if let fullest = sample.filesystems?.map(\.space.usedPercent).max() {
            values[.filesystemUsedPercent] = fullest
        }
        if let load = sample.load, let cpus = sample.cpu?.perCPU.count, cpus > 0 {
            values[.loadPerCPU] = load.load1 / Double(cpus)
        }
        if let outbox {
            values[.outboxPendingEvents] = Double(outbox.pendingEvents)
        }
        // The busiest, fullest and hottest GPU.
        let readings = (gpus?.gpus ?? []).filter { !$0.lost }
        if let busiest = readings.compactMap(\.utilizationPercent).max() {
            values[.gpuUtilizationPercent] = busiest
        }
        let memory = readings.compactMap { gpu -> Double? in
            guard let used = gpu.memoryUsedBytes, let total = gpu.memoryTotalBytes, total > 0 else { return nil }
            return Double(used) / Double(total) * 100
        }
        if let fullest = memory.max() { values[.gpuMemoryPercent] = fullest }
        if let hottest = readings.compactMap(\.temperatureCelsius).max() {
            values[.gpuTemperatureCelsius] = Double(hottest)
        }
        return values
    }
}
