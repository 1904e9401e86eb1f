import Foundation
import HostMeterAgent
import Metering
import TestSupport
import Testing

@testable import AgentAPI
@testable import RuntimeState
@testable import InputGuards

/// Inputs that the targets of fuzz/agent (the configuration, `api.listen`, manifest files, and the
/// API's bodies with their stored forms) broke something with, kept under
/// Tests/Fixtures/fuzz/agent/<target>/ (the folder is the target's name). Every one is fed to its target's entry point again, which
/// must answer with a value (a configuration parsed alike twice; rules and manifests stored and
/// served as themselves) or with its typed error; the tests below it pin what the fix made of
/// each. They live here because this target links every module those entry points are in.
struct FuzzRegressionTests {
    typealias Input = FuzzInput

    static let inputs = FuzzInput.all(harness: "agent")

    /// A kept input of one of this harness's targets, by target and file name.
    static func input(_ target: String, _ name: String) -> Input { Input(harness: "agent", target: target, name: name) }

    /// Each target's decoder, called as fuzz/agent/APIFuzzTargets.swift and ConfigFuzzTargets.swift
    /// call it, with the same checks on what it accepts.
    static let targets: [String: @Sendable ([UInt8]) throws -> Void] = [
        "config": { bytes in
            let yaml = String(decoding: bytes, as: UTF8.self)
            let configuration: AgentConfiguration
            do throws(ConfigurationError) {
                configuration = try AgentConfiguration.parse(yaml, file: "/fuzz/hostmeter.yaml")
            } catch {
                #expect(!error.message.isEmpty)
                return
            }
            #expect(try AgentConfiguration.parse(yaml, file: "/fuzz/hostmeter.yaml") == configuration)
            #expect((1...3600).contains(configuration.intervalSeconds))
            #expect((1...configuration.intervalSeconds).contains(configuration.effectiveSampleSeconds))
            try ThresholdRule.validate(configuration.thresholds)
        },
        "instance_manifest_file": { bytes in
            switch InstanceDirectory.parse(String(decoding: bytes, as: UTF8.self), file: "/fuzz/vm.yaml") {
            case .success(let manifest): try expectStoredAndServedAsItself(manifest)
            case .failure(let problem): #expect(!problem.message.isEmpty)
            }
        },
        "listen_address": { bytes in
            do throws(ListenAddressError) {
                let address = String(decoding: bytes, as: UTF8.self)
                let (host, port) = try ListenAddress.parse(address)
                #expect(!host.utf8.contains { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") })
                let written = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
                #expect(try ListenAddress.parse(written) == (host, port))
            } catch {
                #expect(!error.description.isEmpty)
            }
        },
        "threshold_rules_request": { bytes in
            let rules: [ThresholdRule]
            do throws(ThresholdRuleError) {
                rules = try ThresholdRulesRequest.decode(Data(bytes))
            } catch {
                #expect(!error.description.isEmpty)
                return
            }
            try expectStoredAndServedAsItself(rules)
        },
        "threshold_rules": { bytes in
            let rules: [ThresholdRule]
            do throws(ThresholdRuleError) {
                rules = try ThresholdRule.decodeList(json: Data(bytes))
            } catch {
                #expect(!error.description.isEmpty)
                return
            }
            try expectStoredAndServedAsItself(rules)
        },
        "instance_manifest_request": { bytes in
            let (id, body) = pathAndBody(bytes)
            let manifest: InstanceManifest
            do throws(InstanceManifestError) {
                manifest = try InstanceManifestRequest.decode(body, instanceID: id)
            } catch {
                #expect(!error.description.isEmpty)
                return
            }
            #expect(manifest.instanceID == id)
            try expectStoredAndServedAsItself(manifest)
        },
        "instance_manifest": { bytes in
            let manifest: InstanceManifest
            do throws(InstanceManifestError) {
                manifest = try InstanceManifest.decode(json: Data(bytes))
            } catch {
                #expect(!error.description.isEmpty)
                return
            }
            try expectStoredAndServedAsItself(manifest)
        },
    ]

    /// The `instance_manifest_request` target's input: the path's id, a newline, the body.
    static func pathAndBody(_ bytes: [UInt8]) -> (id: String, body: Data) {
        let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        return (String(decoding: bytes[..<newline], as: UTF8.self), Data(bytes[min(newline + 1, bytes.endIndex)...]))
    }

    /// Stored as `ThresholdRuleBook.put` stores it, the set reads back as itself; a GET's body put
    /// back gives the same set.
    static func expectStoredAndServedAsItself(_ rules: [ThresholdRule]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let stored = try encoder.encode(rules)
        #expect(try ThresholdRule.decodeList(json: stored) == rules)
        let got = Data(#"{"source":"api","updated_at":1700000000.5,"rules":"#.utf8) + stored + Data("}".utf8)
        #expect(try ThresholdRulesRequest.decode(got) == rules)
    }

    /// Stored as `json()`, the manifest reads back as itself; a GET's body put back to its path
    /// gives the same manifest.
    static func expectStoredAndServedAsItself(_ manifest: InstanceManifest) throws {
        let stored = manifest.json()
        #expect(try InstanceManifest.decode(json: stored) == manifest)
        #expect(try InstanceManifestRequest.decode(getBody(stored), instanceID: manifest.instanceID) == manifest)
    }

    /// `GET /instances/{id}`'s body for a stored manifest: its fields, then source, file, running.
    static func getBody(_ stored: Data) -> Data {
        stored.dropLast() + Data(#","source":"api","file":null,"running":null}"#.utf8)
    }

    @Test(arguments: FuzzRegressionTests.inputs)
    func everyKeptInputIsAcceptedAsItselfOrRefusedWithItsError(input: Input) throws {
        let run = try #require(Self.targets[input.target], "Tests/Fixtures/fuzz/agent/\(input.target) is named after no fuzz target")
        try run(try input.bytes())
    }

    // MARK: config, instance_manifest_file: an alias used as a mapping key hung Yams

    /// Issue 16 (known to the fuzzers before as a timeout they could not fix): nested aliases, the
    /// last one used as a mapping key, make Yams' composer hash 2^26 nodes, for minutes, inside
    /// the sampler or at start. `YAMLGuard` refuses the first anchor before Yams composes.
    @Test func anAliasBombIsRefusedAtItsFirstAnchorBeforeYamsComposesIt() throws {
        let configuration = String(decoding: try Self.input("config", "alias-bomb-as-mapping-key").bytes(), as: UTF8.self)
        #expect(configuration.utf8.count < 500 && configuration.contains("? *z"))
        #expect {
            try AgentConfiguration.parse(configuration, file: "/fuzz/hostmeter.yaml")
        } throws: { error in
            "\(error)".hasPrefix("/fuzz/hostmeter.yaml:2: an anchor (&a) at column 4: YAML anchors and aliases are not allowed")
        }
        let manifest = String(
            decoding: try Self.input("instance_manifest_file", "alias-bomb-as-mapping-key").bytes(), as: UTF8.self)
        guard case .failure(let problem) = InstanceDirectory.parse(manifest, file: "/fuzz/vm.yaml") else {
            Issue.record("the bomb was accepted as a manifest")
            return
        }
        #expect(problem.message.hasPrefix("line 3: an anchor (&a) at column 4: YAML anchors and aliases are not allowed"))
    }

    // MARK: listen_address: brackets and ':' inside a host were accepted

    /// Found by the fuzzer: "[[]:1" was accepted with the host "[", which no resolver knows; the
    /// configuration passed `hostmeter config check` and the agent then failed to bind.
    @Test func aBracketInsideABracketedHostIsRefused() throws {
        let address = String(decoding: try Self.input("listen_address", "bracket-in-bracketed-host").bytes(), as: UTF8.self)
        #expect(address == "[[]:1")
        #expect(throws: ListenAddressError.self) { try ListenAddress.parse(address) }
        #expect(throws: ConfigurationError.self) { try AgentConfiguration.parse("api: {listen: \"[[]:1\"}") }
    }

    /// Written by hand from the one above: brackets in a host without them, and a ':' hidden from a
    /// Character comparison by the combining mark after it.
    @Test(arguments: ["x[:80", "a]b:80", "[::1]\u{301}]:80", "a:\u{301}b:80"])
    func aHostWithABracketOrAColonByteIsRefused(address: String) {
        #expect(throws: ListenAddressError.self) { try ListenAddress.parse(address) }
    }

    @Test func addressesStillParse() throws {
        #expect(try ListenAddress.parse("127.0.0.1:9780") == ("127.0.0.1", 9780))
        #expect(try ListenAddress.parse("[::1]:9780") == ("::1", 9780))
        #expect(try ListenAddress.parse("[fe80::1%eth0]:0") == ("fe80::1%eth0", 0))
        #expect(try ListenAddress.parse("localhost:65535") == ("localhost", 65535))
        #expect(try ListenAddress.parse(":9780") == ("0.0.0.0", 9780))
    }

    // MARK: instance_manifest(_request): JSONSerialization dropped U+FEFF from PUT bodies

    /// Found by the fuzzer: an id that starts with U+FEFF was stored, but the GET's body put back to
    /// the same path was refused ("instance_id: must be …"): JSONSerialization had dropped the
    /// U+FEFF from the body's `instance_id`, not from the path's.
    @Test func aPathIDStartingWithUFEFFCanBePutBackFromItsGET() throws {
        let (id, body) = Self.pathAndBody(try Self.input("instance_manifest_request", "path-id-starting-with-bom").bytes())
        #expect(id == "\u{FEFF}7")
        let manifest = try InstanceManifestRequest.decode(body, instanceID: id)
        #expect(manifest.instanceID == id)
        #expect(try InstanceManifestRequest.decode(Self.getBody(manifest.json()), instanceID: id) == manifest)
    }

    /// Found by the fuzzer: a stored manifest whose cgroup has U+FEFF right after an escape lost it
    /// when its GET's body was put back, so the PUT changed the cgroup it meters.
    @Test func aStoredManifestWithUFEFFInItsCgroupIsPutBackUnchanged() throws {
        let stored = Data(try Self.input("instance_manifest", "bom-after-escape-in-cgroup").bytes())
        let manifest = try InstanceManifest.decode(json: stored)
        #expect(manifest.cgroup == "machine.slice/macRang-qemu\\\u{FEFF}3\\x2dvm42.scope")
        #expect(try InstanceManifestRequest.decode(Self.getBody(manifest.json()), instanceID: "vm-42") == manifest)
    }

    /// Written by hand from the two above: a string that starts with U+FEFF is kept as written.
    @Test func aPUTBodyKeepsAUFEFFThatStartsAString() throws {
        let body = Data(#"{"user_id": "\#u{FEFF}alice", "cgroup": "\#u{FEFF}machine.slice/vm.scope"}"#.utf8)
        let manifest = try InstanceManifestRequest.decode(body, instanceID: "vm-1")
        #expect(manifest.userID == "\u{FEFF}alice")
        #expect(manifest.cgroup == "\u{FEFF}machine.slice/vm.scope")
    }

    /// The body is decoded once, as a stored manifest is, so both read a repeated key alike (the
    /// first wins; JSONSerialization took the last).
    @Test func aPUTBodyAndAStoredManifestReadARepeatedKeyAlike() throws {
        let body = #"{"instance_id": "vm-1", "user_id": "alice", "user_id": "bob", "cgroup": "c"}"#
        let put = try InstanceManifestRequest.decode(Data(body.utf8), instanceID: "vm-1")
        #expect(put == (try InstanceManifest.decode(json: Data(body.utf8))))
        #expect(put.userID == "alice")
    }
}
