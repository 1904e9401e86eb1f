import Foundation
import TestSupport
import Testing
import UsageModel

/// `hostmeter verify` and the independent Python verifier (scripts/hostmeter_tools/usage_verify.py,
/// hashlib and its own RFC 8785 writer) on one clean delivery and on tampered copies of it: both
/// must pass the clean ones and name the same first bad event, for the same kind of reason, in the
/// others.
@Suite(.serialized) struct VerifyCommandTests {
    typealias Delivery = [[String: Any]]

    /// Two hosts' deliveries: `events` chained events of one instance each, on consecutive 30-s periods.
    static func chain(host: String, events count: Int) throws -> Delivery {
        var head: ChainHead?
        var delivery: Delivery = []
        for index in 0..<count {
            let start = Int64(1_764_892_800 + 30 * index)
            let event = try UsageEvent(
                hostID: host, instanceID: "vm-7", userID: "alice", orgID: index % 2 == 0 ? "acme" : nil,
                period: Period(start: start, end: start + 30),
                metrics: UsageMetrics(
                    cpuSeconds: Int64(3 + index), cpuPercentAvg: 12.5 + Double(index) / 3, memoryGB: 1.000001,
                    memoryPercent: 33.3, storageGB: 20.4, networkEgressMB: 1e-7 * Double(index), networkIngressMB: 0.44,
                    gpuSeconds: 0),
                timestamp: start + 31
            ).chained(after: head)
            head = event.chainHead
            delivery.append(try JSONSerialization.jsonObject(with: try UsageEventEncoder(version: .v1_1).encode(event)) as! [String: Any])
        }
        return delivery
    }

    /// `event` with its hash made again over its (changed) content, as a forger would.
    static func rehashed(_ event: [String: Any]) throws -> [String: Any] {
        var event = event
        event["hash"] = nil
        let bytes = try CanonicalJSON(parsing: try JSONSerialization.data(withJSONObject: event)).canonicalBytes()
        event["hash"] = UsageEvent.hexSHA256(bytes)
        return event
    }

    /// The cases: a name, the lines of the file (each a JSON value), flags, and the expected verdict:
    /// nil for clean, else the kind and the 1-based line (with `#N` for an array's element).
    static func cases() throws -> [(String, [Any], [String], (kind: String, line: String)?)] {
        let a = try chain(host: "hv-a", events: 6)
        let b = try chain(host: "hv-b", events: 6)
        var changed = a
        var metrics = changed[2]["metrics"] as! [String: Any]
        metrics["cpu_seconds"] = (metrics["cpu_seconds"] as! Int) + 1
        changed[2]["metrics"] = metrics
        var dropped = a
        dropped.remove(at: 3)
        // Two events swapped in time, every hash made again: the chain links, the periods do not.
        var reordered = a
        let (second, third) = (reordered[1]["period"]!, reordered[2]["period"]!)
        reordered[1]["period"] = third
        reordered[2]["period"] = second
        reordered[1] = try rehashed(reordered[1])
        for index in 2..<reordered.count {
            reordered[index]["prev_hash"] = reordered[index - 1]["hash"]
            reordered[index] = try rehashed(reordered[index])
        }
        // Host b's event passed off as host a's.
        var replayed = a
        var foreign = b[3]
        foreign["host_id"] = "hv-a"
        replayed.insert(foreign, at: 4)
        // A second, rehashed version of seq 3: two events claim one place.
        var forked = a
        var other = a[2]
        other["timestamp"] = (other["timestamp"] as! Int) + 1
        forked.append(try rehashed(other))
        // The chain's first link claims a predecessor.
        var rooted = a
        rooted[0]["prev_hash"] = String(repeating: "0", count: 64)
        rooted[0] = try rehashed(rooted[0])
        let cloudEvents: [Any] = a.map { event in
            ["specversion": "1.0", "id": event["event_id"]!, "source": "hostmeter/hv-a", "type": "resource_usage",
             "datacontenttype": "application/json", "data": event] as [String: Any]
        }
        let threshold: [String: Any] = ["event_type": "threshold_alert", "event_id": "t-1"]
        return [
            ("clean", a, [], nil),
            ("clean, two hosts, copies and a threshold event", a + [a[1], threshold] + b + [b[5]], [], nil),
            ("clean, as one CloudEvents batch", [cloudEvents], [], nil),
            ("clean from seq 4 on", Array(a[3...]), [], nil),
            ("one metric changed", changed, [], ("changed", "3")),
            ("an event dropped", dropped, [], ("missing", "4")),
            ("two events reordered, rehashed", reordered, [], ("hole", "2")),
            ("an event of another host", replayed, [], ("changed", "5")),
            ("another host's event as it was, whole history asked", a + [b[3]], ["--from-start"], ("not_from_start", "7")),
            ("a fork", forked, [], ("fork", "7")),
            ("a first event with a predecessor", rooted, [], ("broken", "1")),
            ("a 1.0 event", a + [["event_type": "resource_usage", "event_id": "x", "version": "1.0", "timestamp": 1,
                                  "host_id": "hv-a", "instance_id": "vm-7", "user_id": "alice", "org_id": NSNull(),
                                  "metrics": a[0]["metrics"]!, "period": a[0]["period"]!] as [String: Any]],
             [], ("unchained", "7")),
            ("not JSON", a.map { $0 as Any } + ["{\"event_type\": "], [], ("not_json", "7")),
        ]
    }

    @Test func bothVerifiersAgreeOnCleanAndTamperedDeliveries() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, (name, lines, flags, expected)) in try Self.cases().enumerated() {
            let file = directory.appendingPathComponent("case-\(index).jsonl")
            let text = try lines.map { line -> String in
                if let raw = line as? String { return raw }
                return String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self)
            }.joined(separator: "\n") + "\n"
            try Data(text.utf8).write(to: file)
            let swift = try run(TestPaths.hostmeter, ["verify"] + flags + [file.path])
            let python = try run(
                URL(fileURLWithPath: "/usr/bin/env"),
                ["env", "PYTHONPATH=\(TestPaths.file("scripts").path)", "python3", "-m", "hostmeter_tools.usage_verify"]
                    + flags + [file.path])
            let swiftReport = try jsonObject(swift.stdout)
            let pythonReport = try jsonObject(python.stdout)
            let location = expected.map { "\(file.path):\($0.line)" }
            if let expected {
                #expect(swift.status == 1 && python.status == 1, "\(name): \(swift.stderr) \(python.stderr)")
                let swiftFirst = swiftReport["first_problem"] as? [String: Any]
                let pythonFirst = pythonReport["first_problem"] as? [String: Any]
                #expect(swiftFirst?["kind"] as? String == expected.kind, "\(name): \(swift.stderr)")
                #expect(swiftFirst?["location"] as? String == location, "\(name): \(swift.stderr)")
                #expect(pythonFirst?["kind"] as? String == expected.kind, "\(name): python says \(pythonReport)")
                #expect(pythonFirst?["location"] as? String == location, "\(name): python says \(pythonReport)")
                #expect(swift.stderr.contains(location ?? ""), "\(name): the message names the event's place: \(swift.stderr)")
            } else {
                #expect(swift.status == 0, "\(name): \(swift.stderr)")
                #expect(python.status == 0, "\(name): python says \(pythonReport) \(python.stderr)")
                #expect(swiftReport["ok"] as? Bool == true && pythonReport["ok"] as? Bool == true, "\(name)")
            }
            #expect(swiftReport["problems"] as? Int == pythonReport["problems"] as? Int, "\(name): \(swift.stderr)")
            #expect(swiftReport["duplicates"] as? Int == pythonReport["duplicates"] as? Int, "\(name)")
        }
    }

    @Test func aFileThatCannotBeReadExitsTwo() throws {
        let result = try hostmeter("verify", "/nonexistent/events.jsonl")
        #expect(result.status == 2 && result.stderr.contains("/nonexistent/events.jsonl"), "\(result.stderr)")
    }
}
