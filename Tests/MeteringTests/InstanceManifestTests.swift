import Foundation
import Metering
import Testing

/// Manifests as `PUT /instances/{id}` and stored rows give them: strict JSON, every refusal naming
/// the field (`interfaces[1]`) so the operator knows what to fix.
@Suite struct InstanceManifestTests {
    static let full = #"""
        {"instance_id": "vm-42", "user_id": "u-9", "org_id": "org-1",
         "cgroup": "machine.slice/machine-qemu\\x2d1\\x2dvm42.scope",
         "interfaces": ["tap42", "tap42b"], "disks": ["/var/lib/libvirt/images/vm42.qcow2", "/dev/vg0/vm42-data"],
         "gpus": [0, "GPU-8f3c2d1e-0000-4000-8000-000000000001"], "vcpus": 4}
        """#

    /// The field an invalid document is refused for, or nil when it is accepted.
    static func refusal(_ json: String) -> InstanceManifestError? {
        do {
            _ = try InstanceManifest.decode(json: Data(json.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test func aFullManifestDecodesAndRoundTripsThroughItsJSON() throws {
        let manifest = try InstanceManifest.decode(json: Data(Self.full.utf8))
        let expected = try InstanceManifest(
            instanceID: "vm-42", userID: "u-9", orgID: "org-1", cgroup: #"machine.slice/machine-qemu\x2d1\x2dvm42.scope"#,
            interfaces: ["tap42", "tap42b"], disks: ["/var/lib/libvirt/images/vm42.qcow2", "/dev/vg0/vm42-data"],
            gpus: ["0", "GPU-8f3c2d1e-0000-4000-8000-000000000001"], vcpus: 4)
        #expect(manifest == expected)
        #expect(manifest.identity == InstanceIdentity(instanceID: "vm-42", userID: "u-9", orgID: "org-1"))

        let json = String(decoding: manifest.json(), as: UTF8.self)
        // Sorted keys, slashes as written: what is stored and served.
        #expect(
            json == #"{"cgroup":"machine.slice/machine-qemu\\x2d1\\x2dvm42.scope","#
                + #""disks":["/var/lib/libvirt/images/vm42.qcow2","/dev/vg0/vm42-data"],"#
                + #""gpus":["0","GPU-8f3c2d1e-0000-4000-8000-000000000001"],"instance_id":"vm-42","#
                + #""interfaces":["tap42","tap42b"],"org_id":"org-1","user_id":"u-9","vcpus":4}"#)
        #expect(try InstanceManifest.decode(json: manifest.json()) == manifest)
    }

    @Test func optionalFieldsTakeTheirDefaultsAndNullIsAbsent() throws {
        let minimal = try InstanceManifest.decode(json: Data(#"{"instance_id": "vm-1", "user_id": "u", "cgroup": "vm1.scope"}"#.utf8))
        #expect(minimal.orgID == nil)
        #expect(minimal.interfaces.isEmpty)
        #expect(minimal.disks.isEmpty)
        #expect(minimal.gpus.isEmpty)
        #expect(minimal.vcpus == 1)
        let nulls = try InstanceManifest.decode(
            json: Data(
                #"{"instance_id": "vm-1", "user_id": "u", "org_id": null, "cgroup": null, "interfaces": ["tap1"], "disks": null, "gpus": null, "vcpus": null}"#
                    .utf8))
        #expect(nulls.orgID == nil)
        #expect(nulls.cgroup == nil)
        #expect(nulls.interfaces == ["tap1"])
        #expect(nulls.vcpus == 1)
        // An absent org is written as null and read back as absent.
        #expect(String(decoding: minimal.json(), as: UTF8.self).contains(#""org_id":null"#))
        #expect(try InstanceManifest.decode(json: minimal.json()) == minimal)
    }

    @Test func limitsAreInclusive() throws {
        let longest = String(repeating: "x", count: 256)
        let manifest = try InstanceManifest(
            instanceID: longest, userID: longest, interfaces: ["fifteen-bytes-x"], vcpus: InstanceManifest.maxVCPUs)
        #expect(manifest.interfaces == ["fifteen-bytes-x"])
        #expect(throws: Never.self) {
            try InstanceManifest(
                instanceID: "vm", userID: "u", interfaces: (0..<InstanceManifest.maxListCount).map { "tap\($0)" })
        }
        // Non-ASCII ids are fine; only control characters are refused.
        #expect(throws: Never.self) { try InstanceManifest(instanceID: "vm-ü", userID: "ユーザー", cgroup: "vm.scope") }
    }

    @Test func gpusMayBeNumbersOrStrings() throws {
        func gpus(_ list: String) throws -> [String] {
            try InstanceManifest.decode(
                json: Data(#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": \#(list)}"#.utf8)
            ).gpus
        }
        #expect(try gpus("[0, 1]") == ["0", "1"])
        #expect(try gpus(#"["0", "GPU-abc"]"#) == ["0", "GPU-abc"])
        #expect(try gpus(#"[3, "GPU-abc", 1]"#) == ["3", "GPU-abc", "1"])
        #expect(try gpus("[]") == [])
        // The same GPU as a number and as a string is one GPU listed twice.
        let twice = Self.refusal(#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": [0, "0"]}"#)
        #expect(twice?.field == "gpus[1]")
        #expect(twice?.message == #""0" is listed twice"#)
    }

    @Test(arguments: [
        // Identifiers
        (#"{"instance_id": "", "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        (#"{"instance_id": "vm", "user_id": "", "cgroup": "vm.scope"}"#, "user_id"),
        (#"{"instance_id": "vm", "user_id": "u", "org_id": "", "cgroup": "vm.scope"}"#, "org_id"),
        (#"{"instance_id": "vm\n1", "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        (#"{"instance_id": "vm", "user_id": "u\u0007", "cgroup": "vm.scope"}"#, "user_id"),
        (#"{"instance_id": "vm", "user_id": "u", "org_id": "o\u007f", "cgroup": "vm.scope"}"#, "org_id"),
        (#"{"instance_id": "\#(String(repeating: "x", count: 257))", "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        (#"{"user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        (#"{"instance_id": "vm", "cgroup": "vm.scope"}"#, "user_id"),
        (#"{"instance_id": null, "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        // Where it is metered
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "machine.slice/../system.slice"}"#, "cgroup"),
        // A combining mark after the '/' makes "/\u0301" one Character: still a ".." to the kernel.
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "../\u0301x"}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": ".."}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "./vm.scope"}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "/"}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": ""}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u"}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": []}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap0", "sixteen-bytes-xx"]}"#, "interfaces[1]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap/0"]}"#, "interfaces[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap0", "tap0:1"]}"#, "interfaces[1]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap 0"]}"#, "interfaces[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": [""]}"#, "interfaces[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": [".."]}"#, "interfaces[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap0", "tap1", "tap0"]}"#, "interfaces[2]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "disks": ["images/vm.qcow2"]}"#, "disks[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "disks": ["/a.img", "/var/../etc/shadow"]}"#, "disks[1]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "disks": ["/var/../\u0301etc/shadow"]}"#, "disks[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "disks": ["/a.img", "/a.img"]}"#, "disks[1]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": ["GPU 0"]}"#, "gpus[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": [""]}"#, "gpus[0]"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": 0}"#, "vcpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": 5000}"#, "vcpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": -2}"#, "vcpus"),
        // Unknown fields and wrong types
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "colour": "red"}"#, "colour"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpu": 2}"#, "vcpu"),
        (#"{"instance_id": 42, "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id"),
        (#"{"instance_id": "vm", "user_id": ["u"], "cgroup": "vm.scope"}"#, "user_id"),
        (#"{"instance_id": "vm", "user_id": "u", "org_id": 7, "cgroup": "vm.scope"}"#, "org_id"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": {"path": "vm.scope"}}"#, "cgroup"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": "tap0"}"#, "interfaces"),
        (#"{"instance_id": "vm", "user_id": "u", "interfaces": [1]}"#, "interfaces"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "disks": "/a.img"}"#, "disks"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": 0}"#, "gpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": [1.5]}"#, "gpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "gpus": [true]}"#, "gpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": "4"}"#, "vcpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": 2.5}"#, "vcpus"),
        (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": true}"#, "vcpus"),
        // Not a manifest at all
        (#"[{"instance_id": "vm"}]"#, ""),
        (#""vm""#, ""),
        (#"{"instance_id": "vm""#, ""),
        ("", ""),
    ])
    func invalidManifestsNameTheField(json: String, field: String) throws {
        let error = try #require(Self.refusal(json), "accepted: \(json)")
        #expect(error.field == field, "\(error)")
        #expect(!error.message.isEmpty)
        #expect(error.description == (field.isEmpty ? error.message : "\(field): \(error.message)"))
    }

    @Test func messagesSayWhatIsExpected() throws {
        let cases: [(String, String)] = [
            (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": 0}"#, "vcpus: must be a whole number from 1 to 4096"),
            (#"{"instance_id": "vm", "user_id": "u", "cgroup": "vm.scope", "vcpus": "4"}"#, "vcpus: must be a whole number of CPUs"),
            (#"{"user_id": "u", "cgroup": "vm.scope"}"#, "instance_id: is required"),
            (#"{"instance_id": "vm\u0001", "user_id": "u", "cgroup": "vm.scope"}"#, "instance_id: must not contain control characters"),
            (#"{"instance_id": "vm", "user_id": "u"}"#, "cgroup: an instance needs a cgroup or at least one interface to be metered"),
            (#"{"instance_id": "vm", "user_id": "u", "interfaces": ["tap0", "tap0"]}"#, #"interfaces[1]: "tap0" is listed twice"#),
        ]
        for (json, description) in cases {
            #expect(Self.refusal(json)?.description == description, "\(json)")
        }
        let unknown = try #require(Self.refusal(#"{"instance_id": "vm", "user_id": "u", "cgroup": "c", "colour": "red"}"#))
        #expect(unknown.message.hasPrefix("unknown field; known: instance_id, user_id, org_id, cgroup"))
        #expect(Self.refusal(#"{"instance_id": "vm""#)?.message.hasPrefix("not valid JSON") == true)
        #expect(Self.refusal("[]")?.message.hasPrefix("a manifest must be an object") == true)
    }

    @Test func listsBeyondTheirBoundAreRefused() {
        let tooMany = (0...InstanceManifest.maxListCount).map { "\"/d/\($0).img\"" }.joined(separator: ",")
        let error = Self.refusal(#"{"instance_id": "vm", "user_id": "u", "cgroup": "c", "disks": [\#(tooMany)]}"#)
        #expect(error?.field == "disks")
        #expect(error?.message == "at most 64 entries")
    }

    @Test func theInitializerAndValidateApplyTheSameRules() throws {
        #expect(throws: InstanceManifestError.self) { try InstanceManifest(instanceID: "vm", userID: "u", vcpus: 2) }
        do {
            _ = try InstanceManifest(instanceID: "vm", userID: "u", interfaces: ["tap0", "tap/1"])
            Issue.record("accepted tap/1")
        } catch {
            #expect(error.field == "interfaces[1]")
        }
        // A value changed after it was made is checked again by validate().
        var manifest = try InstanceManifest(instanceID: "vm", userID: "u", cgroup: "vm.scope")
        manifest.vcpus = 5000
        do {
            try manifest.validate()
            Issue.record("validate accepted vcpus 5000")
        } catch {
            #expect(error.field == "vcpus")
        }
    }
}
