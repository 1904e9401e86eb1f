@testable import AgentAPI
import Foundation
import Metering

/// Targets for the JSON the API decodes: the bodies of `PUT /thresholds` and
/// `PUT /instances/{id}`, through exactly the decode and validation the handlers run before they
/// store anything, and the stored forms the agent reads back at start.
enum APIFuzzTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "threshold_rules_request") { bytes in
            do throws(ThresholdRuleError) {
                checkRules(try ThresholdRulesRequest.decode(Data(bytes)))
            } catch {
                check(!error.description.isEmpty, "an error without a message")
            }
        },
        FuzzTarget(name: "threshold_rules") { bytes in
            // The stored set, read back by ThresholdRuleBook at start.
            do throws(ThresholdRuleError) {
                checkRules(try ThresholdRule.decodeList(json: Data(bytes)))
            } catch {
                check(!error.description.isEmpty, "an error without a message")
            }
        },
        FuzzTarget(name: "instance_manifest_request") { bytes in
            // The first line is the path's {id}, as the router hands it over; the rest is the body.
            let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            let id = String(decoding: bytes[..<newline], as: UTF8.self)
            let body = Data(bytes[min(newline + 1, bytes.endIndex)...])
            do throws(InstanceManifestError) {
                let manifest = try InstanceManifestRequest.decode(body, instanceID: id)
                check(manifest.instanceID == id, "PUT /instances/\(String(reflecting: id)) stored \(String(reflecting: manifest.instanceID))")
                checkManifest(manifest)
            } catch {
                check(!error.description.isEmpty, "an error without a message")
            }
        },
        FuzzTarget(name: "instance_manifest") { bytes in
            // A stored manifest, read back by InstanceRegistry at start.
            do throws(InstanceManifestError) {
                checkManifest(try InstanceManifest.decode(json: Data(bytes)))
            } catch {
                check(!error.description.isEmpty, "an error without a message")
            }
        },
    ]
}

/// An accepted rule set passes validation, is stored as `ThresholdRuleBook.put` stores it and
/// read back at start as the same rules, and a GET's body put back gives the same rules: a set
/// that does not survive this is one the agent accepts and then cannot start with.
func checkRules(_ rules: [ThresholdRule]) {
    do {
        try ThresholdRule.validate(rules)
    } catch {
        check(false, "an accepted rule set fails validation: \(error)")
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let stored = try? encoder.encode(rules) else {
        check(false, "an accepted rule set cannot be encoded: \(rules)")
        return
    }
    do {
        let loaded = try ThresholdRule.decodeList(json: stored)
        check(loaded == rules, "stored \(rules), read back \(loaded)")
    } catch {
        check(false, "a stored rule set is refused at start: \(error); stored: \(String(decoding: stored, as: UTF8.self))")
    }
    // GET /thresholds: {"source": …, "updated_at": …, "rules": […]}.
    let got = Data(#"{"source":"api","updated_at":1700000000.5,"rules":"#.utf8) + stored + Data("}".utf8)
    do {
        let put = try ThresholdRulesRequest.decode(got)
        check(put == rules, "served \(rules), put back \(put)")
    } catch {
        check(false, "a served rule set is refused when put back: \(error); body: \(String(decoding: got, as: UTF8.self))")
    }
}

/// An accepted manifest passes validation, reads back as itself from what is stored
/// (`json()`), and a GET's body put back to its path gives the same manifest.
func checkManifest(_ manifest: InstanceManifest) {
    do {
        try manifest.validate()
    } catch {
        check(false, "an accepted manifest fails validation: \(error)")
    }
    let stored = manifest.json()
    do {
        let loaded = try InstanceManifest.decode(json: stored)
        check(loaded == manifest, "stored \(manifest), read back \(loaded)")
    } catch {
        check(false, "a stored manifest is refused at start: \(error); stored: \(String(decoding: stored, as: UTF8.self))")
    }
    // GET /instances/{id}: the manifest's fields, then source, file and running.
    var got = stored
    got.removeLast()  // the closing brace
    got += Data(#","source":"api","file":null,"running":null}"#.utf8)
    do {
        let put = try InstanceManifestRequest.decode(got, instanceID: manifest.instanceID)
        check(put == manifest, "served \(manifest), put back \(put)")
    } catch {
        check(false, "a served manifest is refused when put back: \(error); body: \(String(decoding: got, as: UTF8.self))")
    }
}
