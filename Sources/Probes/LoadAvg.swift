/// /proc/loadavg: `0.16 0.08 0.03 1/78 2242`.
public struct LoadAvg: Sendable, Equatable {
    public var load1: Double
    public var load5: Double
    public var load15: Double
    /// Runnable scheduling entities right now.
    public var running: Int
    /// Scheduling entities (threads) that exist.
    public var total: Int
    public var lastPID: Int

    public static let path = "/proc/loadavg"

    public static func parse(_ text: String) throws(ProbeError) -> LoadAvg {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8], path: String = LoadAvg.path) throws(ProbeError) -> LoadAvg {
        let lines = KernelText.lines(bytes)
        guard let line = lines.first else { throw .malformed(path: path, line: 0, reason: "empty file") }
        let fields = line.fields
        guard fields.count == 5 else {
            throw .malformed(path: path, line: 1, reason: "expected 5 fields, got \(fields.count): '\(line.excerpt)'")
        }
        guard let load1 = KernelText.decimal(fields[0]), let load5 = KernelText.decimal(fields[1]),
            let load15 = KernelText.decimal(fields[2])
        else {
            throw .malformed(path: path, line: 1, reason: "load averages are not decimals: '\(line.excerpt)'")
        }
        let tasks = fields[3]
        guard let slash = tasks.firstIndex(of: UInt8(ascii: "/")),
            let running = KernelText.int(tasks[tasks.startIndex..<slash]),
            let total = KernelText.int(tasks[(slash + 1)...])
        else {
            throw .malformed(path: path, line: 1, reason: "expected 'running/total', got '\(KernelText.string(tasks))'")
        }
        guard let lastPID = KernelText.int(fields[4]) else {
            throw .malformed(path: path, line: 1, reason: "last PID is not an integer: '\(KernelText.string(fields[4]))'")
        }
        return LoadAvg(load1: load1, load5: load5, load15: load15, running: running, total: total, lastPID: lastPID)
    }
}

extension LoadAvg: Encodable {
    private enum CodingKeys: String, CodingKey {
        case load1, load5, load15, running, total, lastPID = "last_pid"
    }
}
