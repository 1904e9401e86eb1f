import Foundation
import TestSupport
import Testing

/// `hostmeter sample` against an independent reader, psutil, read between two hostmeter samples:
/// psutil's value has to fall between them, widened by 1% (exact for memory total). Bracketing
/// makes the check hold on a busy machine, where counters move between any two reads.
@Suite struct PsutilCrossCheckTests {
    @Test func agreesWithPsutil() throws {
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        reader.arguments = ["python3", TestPaths.packageRoot.appendingPathComponent("Tests/EndToEndTests/psutil_reader.py").path]
        let input = Pipe()
        let output = Pipe()
        reader.standardInput = input
        reader.standardOutput = output
        try reader.run()
        defer { if reader.isRunning { reader.terminate() } }
        let handle = output.fileHandleForReading
        #expect(try readLine(handle) == "ready", "psutil is not importable: run scripts/deps.sh --test")

        let before = try jsonObject(try hostmeter("sample").stdout)
        let mounts = (before["filesystems"] as? [[String: Any]] ?? []).compactMap { $0["mount_point"] as? String }
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: mounts) + Data("\n".utf8))
        let psutil = try #require(
            try JSONSerialization.jsonObject(with: Data(try readLine(handle).utf8)) as? [String: Any])
        let after = try jsonObject(try hostmeter("sample").stdout)
        reader.waitUntilExit()

        // Memory.
        let memoryBefore = try #require(before["memory"] as? [String: Any])
        let memoryAfter = try #require(after["memory"] as? [String: Any])
        #expect(memoryBefore["total_bytes"] as? Int == psutil["memory_total"] as? Int)
        try expectBracketed(
            "memory used", psutil["memory_used"], memoryBefore["used_bytes"], memoryAfter["used_bytes"])

        // Per-CPU seconds, by mode.
        let cpusBefore = try #require((before["cpu"] as? [String: Any])?["per_cpu"] as? [[String: Any]])
        let cpusAfter = try #require((after["cpu"] as? [String: Any])?["per_cpu"] as? [[String: Any]])
        let cpusPsutil = try #require(psutil["per_cpu"] as? [[String: Any]])
        #expect(cpusBefore.count == cpusPsutil.count)
        for (index, cpu) in cpusPsutil.enumerated() where index < cpusBefore.count && index < cpusAfter.count {
            for mode in ["user", "system", "idle"] {
                try expectBracketed("cpu\(index) \(mode)", cpu[mode], cpusBefore[index][mode], cpusAfter[index][mode])
            }
        }

        // Per-interface bytes.
        let nicsPsutil = try #require(psutil["network"] as? [String: [String: Any]])
        let nicsBefore = interfaces(before)
        let nicsAfter = interfaces(after)
        #expect(!nicsBefore.isEmpty)
        for (name, counters) in nicsBefore {
            let reference = try #require(nicsPsutil[name], "psutil does not see interface \(name)")
            for key in ["rx_bytes", "tx_bytes"] {
                try expectBracketed("\(name) \(key)", reference[key], counters[key], nicsAfter[name]?[key])
            }
        }

        // Filesystem used bytes.
        let filesystemsPsutil = try #require(psutil["filesystems"] as? [String: Any])
        let usedBefore = filesystems(before)
        let usedAfter = filesystems(after)
        #expect(!usedBefore.isEmpty)
        for (mount, used) in usedBefore {
            try expectBracketed("\(mount) used", filesystemsPsutil[mount], used, usedAfter[mount])
        }
    }

    private func readLine(_ handle: FileHandle) throws -> String {
        var bytes = Data()
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func interfaces(_ sample: [String: Any]) -> [String: [String: Any]] {
        Dictionary(
            ((sample["network"] as? [[String: Any]]) ?? []).compactMap { item in
                (item["name"] as? String).map { ($0, item) }
            }, uniquingKeysWith: { first, _ in first })
    }

    private func filesystems(_ sample: [String: Any]) -> [String: Any] {
        Dictionary(
            ((sample["filesystems"] as? [[String: Any]]) ?? []).compactMap { item in
                (item["mount_point"] as? String).map { ($0, item["used_bytes"] as Any) }
            }, uniquingKeysWith: { first, _ in first })
    }

    /// `reference` lies within [min(a, b) − 1%, max(a, b) + 1%].
    private func expectBracketed(
        _ what: String, _ reference: Any?, _ first: Any?, _ second: Any?,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let value = try #require(number(reference), "\(what): psutil gave no value", sourceLocation: sourceLocation)
        let a = try #require(number(first), "\(what): hostmeter gave no value", sourceLocation: sourceLocation)
        let b = try #require(number(second), "\(what): hostmeter gave no value", sourceLocation: sourceLocation)
        let low = min(a, b) * 0.99
        let high = max(a, b) * 1.01
        #expect(value >= low && value <= high, "\(what): psutil \(value) outside hostmeter's [\(a), \(b)] ± 1%",
                sourceLocation: sourceLocation)
    }

    private func number(_ value: Any?) -> Double? {
        switch value {
        case let number as NSNumber: number.doubleValue
        case let number as Double: number
        case let number as Int: Double(number)
        default: nil
        }
    }
}
