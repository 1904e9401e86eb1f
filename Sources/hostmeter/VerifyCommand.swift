import ArgumentParser
import Foundation
import UsageModel

#if canImport(Glibc)
import Glibc
#endif

/// `hostmeter verify FILE…`: checks delivered UsageEvents 1.1 by their hash chains.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check delivered UsageEvents 1.1: hashes, unbroken chains, contiguous seq, tiling periods.",
        discussion: """
            Reads JSON lines: one event per line (the file sink's format), or a JSON array of events or \
            of CloudEvents per line (HTTP and cloudevents batches), from each FILE (- for standard input). \
            Each UsageEvent's hash is recomputed from its content (RFC 8785, SHA-256); per host and \
            instance, seq must run without a hole, each prev_hash must be the hash of the event before, \
            and each period must start where the one before ended. Copies of one event count once; \
            threshold events are passed over. Prints a summary as JSON; exits 1 naming the first bad \
            event and the reason (and how many problems there are), 2 when a file cannot be read. \
            docs/VERIFYING.md says what each check proves.
            """)

    @Flag(help: "Every chain must start at seq 1: the files hold each instance's whole history.")
    var fromStart = false

    @Option(
        name: .customLong("key"),
        help: ArgumentHelp(
            "A host's public key: the JSON of GET /identity or `hostmeter identity` (which names its host), or a PEM or "
                + "base64 key alone (for every host). Repeat for each host. Commitments of a host with a key have their "
                + "signatures checked.", valueName: "FILE"))
    var keyFiles: [String] = []

    @Option(help: "Print the inclusion proof of this event in the commitment that covers it, and check it.")
    var proof: String?

    @Argument(help: "Files of delivered events (- for standard input).")
    var files: [String]

    /// The longest line read: a batch of 500 CloudEvents is well under it.
    static let maxLineBytes = 64 << 20

    func run() throws {
        var keys: [String?: PublicIdentity] = [:]
        for file in keyFiles {
            do {
                let (host, key) = try Self.readKey(file)
                keys[host] = key
            } catch {
                FileHandle.standardError.write(Data("hostmeter: --key \(file): \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        var verifier = UsageChainVerifier(fromStart: fromStart, keys: keys)
        for file in files {
            do {
                try Self.read(file) { line, number in Self.add(line, at: "\(file):\(number)", to: &verifier) }
            } catch {
                FileHandle.standardError.write(Data("hostmeter: \(file): \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
        let report = verifier.report()
        if let proof {
            guard let found = verifier.inclusionProof(of: proof) else {
                FileHandle.standardError.write(
                    Data("hostmeter: verify: no commitment here covers event \(proof) with all its events\n".utf8))
                throw ExitCode.failure
            }
            print(String(decoding: Self.proofJSON(found), as: UTF8.self))
            guard found.verified else { throw ExitCode.failure }
            return
        }
        print(String(decoding: Self.summary(report), as: UTF8.self))
        if let first = report.problems.first {
            let more = report.problems.count - 1
            FileHandle.standardError.write(
                Data("hostmeter: verify: \(first)\(more > 0 ? " (and \(more) more problem\(more == 1 ? "" : "s"))" : "")\n".utf8))
            for problem in report.problems.dropFirst().prefix(20) {
                FileHandle.standardError.write(Data("  \(problem)\n".utf8))
            }
            throw ExitCode.failure
        }
    }

    /// One line: an object, or an array of them.
    static func add(_ line: Data, at location: String, to verifier: inout UsageChainVerifier) {
        guard let first = line.first(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { return }
        guard first == UInt8(ascii: "["),
            let items = try? JSONSerialization.jsonObject(with: line, options: [.fragmentsAllowed]) as? [Any]
        else {
            verifier.add(line, location: location)
            return
        }
        for (index, item) in items.enumerated() {
            let data = (try? JSONSerialization.data(withJSONObject: item, options: [.fragmentsAllowed])) ?? Data()
            verifier.add(data, location: "\(location)#\(index + 1)")
        }
    }

    /// Calls `body` with each line of `path` and its number, without the newline.
    static func read(_ path: String, _ body: (Data, Int) -> Void) throws {
        let stream: UnsafeMutablePointer<FILE>? = path == "-" ? fdopen(dup(STDIN_FILENO), "r") : fopen(path, "r")
        guard let stream else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { fclose(stream) }
        var buffer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(buffer) }
        var number = 0
        while true {
            let length = getline(&buffer, &capacity, stream)
            guard length >= 0, let buffer else { break }
            number += 1
            guard length <= maxLineBytes else { throw ValidationError("line \(number) is longer than \(maxLineBytes) bytes") }
            var count = length
            if count > 0, buffer[count - 1] == 0x0A { count -= 1 }
            body(Data(bytes: buffer, count: count), number)
        }
        if ferror(stream) != 0 { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }

    /// A key file: the identity document (host and key), or a key alone (nil host: every host).
    static func readKey(_ path: String) throws -> (String?, PublicIdentity) {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                let key = object["public_key"] as? String
            else { throw ValidationError("a JSON object without public_key") }
            return (object["host_id"] as? String, try PublicIdentity(text: key))
        }
        return (nil, try PublicIdentity(text: text))
    }

    static func proofJSON(_ proof: UsageChainVerifier.InclusionProof) -> [UInt8] {
        var json = JSONBytes(capacity: 1024, escapingSlashes: false)
        json.beginObject()
        json.member("commitment_event_id", proof.commitmentEventID)
        json.member("commitment_seq", proof.commitmentSeq)
        json.member("event_id", proof.eventID)
        json.member("leaf_hash", proof.leafHash)
        json.member("leaf_index", proof.leafIndex)
        json.key("proof")
        json.beginArray()
        for hash in proof.path { json.string(hash) }
        json.endArray()
        json.member("root", proof.root)
        json.member("tree_size", proof.treeSize)
        json.key("verified")
        json.bool(proof.verified)
        json.endObject()
        return json.bytes
    }

    static func summary(_ report: UsageChainVerifier.Report) -> [UInt8] {
        var json = JSONBytes(capacity: 1024, escapingSlashes: false)
        json.beginObject()
        json.key("chains")
        json.beginArray()
        for chain in report.chains {
            json.beginObject()
            json.key("first_prev_hash")
            if let previous = chain.firstPrevHash { json.string(previous) } else { json.null() }
            json.member("first_seq", chain.firstSeq)
            json.member("host_id", chain.hostID)
            json.member("instance_id", chain.instanceID)
            json.member("last_hash", chain.lastHash)
            json.member("last_seq", chain.lastSeq)
            json.member("period_end", chain.periodEnd)
            json.member("period_start", chain.periodStart)
            json.endObject()
        }
        json.endArray()
        json.member("commitments", report.commitments)
        json.member("duplicates", report.duplicates)
        json.member("events", report.events)
        if let first = report.problems.first {
            json.key("first_problem")
            json.beginObject()
            json.member("event_id", first.eventID)
            json.member("kind", first.kind.rawValue)
            json.member("location", first.location)
            json.member("reason", first.reason)
            json.endObject()
        }
        json.key("ok")
        json.bool(report.problems.isEmpty)
        json.member("other_events", report.otherEvents)
        json.member("problems", report.problems.count)
        json.member("signatures_checked", report.signaturesChecked)
        json.member("uncommitted_events", report.uncommitted)
        json.endObject()
        return json.bytes
    }
}
