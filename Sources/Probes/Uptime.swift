/// /proc/uptime: seconds since boot and the summed idle seconds of all CPUs.
public struct Uptime: Sendable, Equatable {
    public var uptimeSeconds: Double
    public var idleSeconds: Double

    public static let path = "/proc/uptime"

    public static func parse(_ text: String) throws(ProbeError) -> Uptime {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8], path: String = Uptime.path) throws(ProbeError) -> Uptime {
        guard let line = KernelText.lines(bytes).first else {
            throw .malformed(path: path, line: 0, reason: "empty file")
        }
        let fields = line.fields
        guard fields.count == 2, let uptime = KernelText.decimal(fields[0]), let idle = KernelText.decimal(fields[1])
        else {
            throw .malformed(path: path, line: 1, reason: "expected '<uptime> <idle>' in seconds, got '\(line.excerpt)'")
        }
        return Uptime(uptimeSeconds: uptime, idleSeconds: idle)
    }
}

extension Uptime: Encodable {
    private enum CodingKeys: String, CodingKey {
        case uptimeSeconds = "uptime_seconds", idleSeconds = "idle_seconds"
    }
}
