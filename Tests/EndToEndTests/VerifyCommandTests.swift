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

    /// Two periods, a reboot's gap event over the minute after them, and two periods after it.
    static func rebooted() throws -> Delivery {
        var head: ChainHead?
        var delivery: Delivery = []
        func usage(_ start: Int64) throws {
            let event = try UsageEvent(
                hostID: "hv-a", instanceID: "vm-7", userID: "alice", orgID: nil, period: Period(start: start, end: start + 30),
                metrics: UsageMetrics(cpuSeconds: 4), timestamp: start + 31
            ).chained(after: head)
            head = event.chainHead
            delivery.append(try JSONSerialization.jsonObject(with: try UsageEventEncoder(version: .v1_1).encode(event)) as! [String: Any])
        }
        let origin: Int64 = 1_764_892_800
        try usage(origin)
        try usage(origin + 30)
        let gap = try MeteringGapEvent.chained(
            hostID: "hv-a", instanceID: "vm-7", userID: "alice", orgID: nil, reason: "reboot", from: origin + 60,
            to: origin + 120, detail: "boot a -> boot b", timestamp: origin + 121, after: head)
        head = gap.chainHead
        delivery.append(try JSONSerialization.jsonObject(with: Data(try gap.wireJSON())) as! [String: Any])
        try usage(origin + 120)
        try usage(origin + 150)
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
        let rebooted = try rebooted()
        var gapChanged = rebooted
        gapChanged[2]["reason"] = "instance_stopped"
        var gapDropped = rebooted
        gapDropped.remove(at: 2)
        return [
            ("clean", a, [], nil),
            ("clean, a reboot's hole with its gap event", rebooted, ["--from-start"], nil),
            ("a gap event changed", gapChanged, [], ("changed", "3")),
            ("a gap event dropped", gapDropped, [], ("missing", "3")),
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
        try Self.expectAgreement(try Self.cases(), in: directory)
    }

    /// Runs both verifiers on each case's file and expects the case's verdict from both.
    static func expectAgreement(
        _ cases: [(String, [Any], [String], (kind: String, line: String)?)], in directory: URL,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        for (index, (name, lines, flags, expected)) in cases.enumerated() {
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
            for figure in ["duplicates", "commitments", "signatures_checked", "uncommitted_events"] {
                #expect(swiftReport[figure] as? Int == pythonReport[figure] as? Int, "\(name): \(figure)")
            }
        }
    }

    /// A delivery with signed commitments: events 1–3, the commitment over them, events 4–6, the
    /// commitment over those.
    static func committed(_ events: Delivery, identity: SigningIdentity) throws -> (lines: [Any], commitments: [[String: Any]]) {
        var head: CommitmentHead?
        var lines: [Any] = []
        var commitments: [[String: Any]] = []
        for part in [events[0..<3], events[3..<6]] {
            let leaves = part.map { event in
                let period = event["period"] as! [String: Any]
                return CommitmentLeaf(
                    instanceID: event["instance_id"] as! String, seq: Int64(event["seq"] as! Int), hash: event["hash"] as! String,
                    period: Period(start: Int64(period["start"] as! Int), end: Int64(period["end"] as! Int)))
            }
            let commitment = try UsageCommitment.make(
                leaves: leaves, after: head, hostID: "hv-a", timestamp: 1_764_900_000 + (head?.seq ?? 0), identity: identity)
            head = commitment.head
            let object = try JSONSerialization.jsonObject(with: Data(try commitment.wireJSON())) as! [String: Any]
            lines += part.map { $0 as Any } + [object]
            commitments.append(object)
        }
        return (lines, commitments)
    }

    @Test func bothVerifiersAgreeOnSignedCommitmentsAndTheirForgeries() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let identity = SigningIdentity.generate()
        let keyFile = directory.appendingPathComponent("hv-a.json")
        try Data(identity.publicIdentity.document(hostID: "hv-a", keyFile: nil)).write(to: keyFile)
        let events = try Self.chain(host: "hv-a", events: 6)
        let (clean, _) = try Self.committed(events, identity: identity)

        var forged = clean
        var commitment = forged[3] as! [String: Any]
        var signature = Data(base64Encoded: commitment["signature"] as! String)!
        signature[5] ^= 1
        commitment["signature"] = signature.base64EncodedString()
        forged[3] = commitment
        let (otherKey, _) = try Self.committed(events, identity: SigningIdentity.generate())
        // Event 2 changed and every hash after it made again: the chain holds, the root does not.
        var rewritten = events
        var metrics = rewritten[1]["metrics"] as! [String: Any]
        metrics["cpu_seconds"] = 0
        rewritten[1]["metrics"] = metrics
        rewritten[1] = try Self.rehashed(rewritten[1])
        for index in 2..<rewritten.count {
            rewritten[index]["prev_hash"] = rewritten[index - 1]["hash"]
            rewritten[index] = try Self.rehashed(rewritten[index])
        }
        let (rewrittenLines, _) = try Self.committed(rewritten, identity: identity)
        var rewrittenWithOriginalCommitments = rewrittenLines
        rewrittenWithOriginalCommitments[3] = clean[3]
        rewrittenWithOriginalCommitments[7] = clean[7]
        // The last event cut, the commitment over it kept.
        var cut = clean
        cut.remove(at: 6)
        // The first commitment dropped: asked for the whole history, the second is not the first.
        var skipped = clean
        skipped.remove(at: 3)
        // The middle one of three dropped: the chain of commitments has a hole.
        let more = try Self.chain(host: "hv-a", events: 9)
        var three = try Self.committed(Array(more[0..<6]), identity: identity).lines
        let last = try UsageCommitment.make(
            leaves: more[6..<9].map { event in
                let period = event["period"] as! [String: Any]
                return CommitmentLeaf(
                    instanceID: "vm-7", seq: Int64(event["seq"] as! Int), hash: event["hash"] as! String,
                    period: Period(start: Int64(period["start"] as! Int), end: Int64(period["end"] as! Int)))
            },
            after: try JSONDecoder().decode(UsageCommitment.self, from: try JSONSerialization.data(withJSONObject: three[7])).head,
            hostID: "hv-a", timestamp: 1_764_900_100, identity: identity)
        three += more[6..<9].map { $0 as Any } + [try JSONSerialization.jsonObject(with: Data(try last.wireJSON()))]
        three.remove(at: 7)
        // A forged commitment, hashed but unsigned, claiming ranges no verifier could walk.
        func claiming(_ ranges: [[String: Any]], size: Int) throws -> [Any] {
            var lines = clean
            var commitment = lines[7] as! [String: Any]
            commitment["ranges"] = ranges
            commitment["tree_size"] = size
            lines[7] = try Self.rehashed(commitment.filter { $0.key != "signature" }).merging(["signature": commitment["signature"]!]) { $1 }
            return lines
        }
        let huge = try claiming([["instance_id": "vm-7", "first_seq": 4, "last_seq": 1_000_000_000_000_000]], size: 3)
        let backwards = try claiming([["instance_id": "vm-7", "first_seq": 6, "last_seq": 4]], size: 3)
        let cases: [(String, [Any], [String], (kind: String, line: String)?)] = [
            ("signed and complete", clean, ["--key", keyFile.path], nil),
            ("signed, no key given: hashes and roots only", clean, [], nil),
            ("a forged signature", forged, ["--key", keyFile.path], ("bad_signature", "4")),
            ("signed by another key", otherKey, ["--key", keyFile.path], ("bad_signature", "4")),
            ("a rewritten, re-hashed chain", rewrittenWithOriginalCommitments, ["--key", keyFile.path], ("root_mismatch", "4")),
            ("the tail cut before the last commitment", cut, ["--key", keyFile.path], ("uncovered", "7")),
            ("the first commitment dropped, whole history asked", skipped, ["--key", keyFile.path, "--from-start"],
             ("commitment_missing", "7")),
            ("the middle commitment dropped", three, ["--key", keyFile.path], ("commitment_missing", "11")),
            ("a commitment whose range runs to 10^18", huge, [], ("root_mismatch", "8")),
            ("a commitment whose range runs backwards", backwards, [], ("root_mismatch", "8")),
        ]
        try Self.expectAgreement(cases, in: directory)
        let summary = try jsonObject(try hostmeter("verify", "--key", keyFile.path, directory.appendingPathComponent("case-0.jsonl").path).stdout)
        #expect(summary["signatures_checked"] as? Int == 2 && summary["uncommitted_events"] as? Int == 0)

        // An inclusion proof of event 5, and its check.
        let proof = try hostmeter(
            "verify", "--proof", events[4]["event_id"] as! String, directory.appendingPathComponent("case-0.jsonl").path)
        let object = try jsonObject(proof.stdout)
        #expect(proof.status == 0 && object["verified"] as? Bool == true && object["tree_size"] as? Int == 3, "\(object)")
        #expect(object["leaf_index"] as? Int == 1 && (object["proof"] as? [String])?.count == 2)
    }

    @Test func aFileThatCannotBeReadExitsTwo() throws {
        let result = try hostmeter("verify", "/nonexistent/events.jsonl")
        #expect(result.status == 2 && result.stderr.contains("/nonexistent/events.jsonl"), "\(result.stderr)")
    }
}
