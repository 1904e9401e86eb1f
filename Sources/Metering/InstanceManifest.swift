public import Foundation

/// One metered instance (a VM) on the host: who is billed for it and where its usage is read.
///
/// Manifests come from files in `instances_dir` and from `PUT /instances/{id}`; both are decoded
/// and validated here, so a file and an API body are held to the same rules and give the same
/// messages (`interfaces[1]: …`).
public struct InstanceManifest: Sendable, Equatable, Hashable, Codable {
    public var instanceID: String
    public var userID: String
    public var orgID: String?
    /// The instance's cgroup, relative to the root of the cgroup hierarchy
    /// (`machine.slice/machine-qemu\x2d1\x2dvm42.scope`); nil for an instance metered by its
    /// interfaces only.
    public var cgroup: String?
    /// Its tap interfaces on the host. Host rx on a tap is the guest's egress.
    public var interfaces: [String]
    /// Its disks: image files or block devices, absolute paths.
    public var disks: [String]
    /// Its GPUs: an NVML index ("0") or UUID ("GPU-…"). A GPU the host's NVML cannot see (passed
    /// through to the VM) is billed for the seconds it is assigned.
    public var gpus: [String]
    /// CPUs the instance may use: the denominator of cpu_percent_avg.
    public var vcpus: Int

    public static let fields = ["instance_id", "user_id", "org_id", "cgroup", "interfaces", "disks", "gpus", "vcpus"]
    public static let maxVCPUs = 4096
    public static let maxListCount = 64

    public init(
        instanceID: String, userID: String, orgID: String? = nil, cgroup: String? = nil, interfaces: [String] = [],
        disks: [String] = [], gpus: [String] = [], vcpus: Int = 1
    ) throws(InstanceManifestError) {
        self.instanceID = instanceID
        self.userID = userID
        self.orgID = orgID
        self.cgroup = cgroup
        self.interfaces = interfaces
        self.disks = disks
        self.gpus = gpus
        self.vcpus = vcpus
        try validate()
    }

    /// Checks every field; the error names the first one that is wrong.
    public func validate() throws(InstanceManifestError) {
        try Self.checkIdentifier(instanceID, field: "instance_id")
        try Self.checkIdentifier(userID, field: "user_id")
        if let orgID { try Self.checkIdentifier(orgID, field: "org_id") }
        if let cgroup {
            let parts = Self.pathComponents(cgroup)
            guard !parts.isEmpty, cgroup.utf8.count <= 4096, !cgroup.utf8.contains(0),
                !parts.contains(where: { $0 == "." || $0 == ".." })
            else {
                throw InstanceManifestError(
                    field: "cgroup",
                    message: "must be a path below the cgroup root such as machine.slice/vm42.scope, without . or .. parts")
            }
        }
        guard cgroup != nil || !interfaces.isEmpty else {
            throw InstanceManifestError(
                field: "cgroup", message: "an instance needs a cgroup or at least one interface to be metered")
        }
        try Self.checkList(interfaces, field: "interfaces") { name in
            // The kernel's rule for interface names (dev_valid_name): 1 to 15 bytes, no '/' or
            // whitespace, not "." or "..".
            !name.isEmpty && name.utf8.count <= 15 && name != "." && name != ".."
                && !name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f })
        } message: { "must be an interface name of 1 to 15 bytes without /, : or whitespace" }
        try Self.checkList(disks, field: "disks") { path in
            path.utf8.first == UInt8(ascii: "/") && path.utf8.count <= 4096 && !path.utf8.contains(0)
                && !Self.pathComponents(path).contains("..")
        } message: { "must be an absolute path to an image file or block device, without .. parts" }
        try Self.checkList(gpus, field: "gpus") { gpu in
            (!gpu.isEmpty && gpu.utf8.count <= 96 && gpu.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f })
        } message: { "must be a GPU index (0, 1, …) or UUID (GPU-…)" }
        guard (1...Self.maxVCPUs).contains(vcpus) else {
            throw InstanceManifestError(field: "vcpus", message: "must be a whole number from 1 to \(Self.maxVCPUs)")
        }
    }

    /// A path's components split at the byte '/', as the kernel walks it. Splitting the String
    /// would split at Characters, and '/' followed by a combining mark is one Character, so
    /// "../\u{301}x" would hide its "..".
    static func pathComponents(_ path: String) -> [String] {
        path.utf8.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Ids go into event ids and labels: non-empty, at most 256 bytes, no control characters (the
    /// configuration's rule for host_id).
    static func checkIdentifier(_ value: String, field: String) throws(InstanceManifestError) {
        guard !value.isEmpty, value.utf8.count <= 256 else {
            throw InstanceManifestError(field: field, message: "must be 1 to 256 bytes")
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw InstanceManifestError(field: field, message: "must not contain control characters")
        }
    }

    private static func checkList(
        _ values: [String], field: String, _ isValid: (String) -> Bool, message: () -> String
    ) throws(InstanceManifestError) {
        guard values.count <= maxListCount else {
            throw InstanceManifestError(field: field, message: "at most \(maxListCount) entries")
        }
        var seen = Set<String>()
        for (index, value) in values.enumerated() {
            guard isValid(value) else { throw InstanceManifestError(field: "\(field)[\(index)]", message: message()) }
            guard seen.insert(value).inserted else {
                throw InstanceManifestError(field: "\(field)[\(index)]", message: "\"\(value)\" is listed twice")
            }
        }
    }

    /// The billing identity its events carry.
    public var identity: InstanceIdentity {
        InstanceIdentity(instanceID: instanceID, userID: userID, orgID: orgID)
    }

    // MARK: Coding

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        try self.init(from: decoder, instanceID: nil, ignoring: [])
    }

    /// Decodes a manifest whose id is given apart: `PUT /instances/{id}` takes it from the path
    /// (nil: from the object's `instance_id`, which the caller checks against the path). The object
    /// may carry the fields in `ignored` beside a manifest's own (a GET's `source`, `file`, `running`).
    public init(from decoder: any Decoder, instanceID: String?, ignoring ignored: Set<String>) throws {
        let container: KeyedDecodingContainer<Key>
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            throw InstanceManifestError(
                field: "", message: "a manifest must be an object with \(Self.fields.joined(separator: ", "))")
        }
        for key in container.allKeys where !Self.fields.contains(key.stringValue) && !ignored.contains(key.stringValue) {
            throw InstanceManifestError(
                field: key.stringValue, message: "unknown field; known: \(Self.fields.joined(separator: ", "))")
        }
        func optional<T: Decodable>(_ type: T.Type, _ field: String, _ expected: String) throws -> T? {
            guard container.contains(Key(field)), try !container.decodeNil(forKey: Key(field)) else { return nil }
            do {
                return try container.decode(T.self, forKey: Key(field))
            } catch {
                throw InstanceManifestError(field: field, message: "must be \(expected)")
            }
        }
        func required<T: Decodable>(_ type: T.Type, _ field: String, _ expected: String) throws -> T {
            guard let value = try optional(type, field, expected) else {
                throw InstanceManifestError(field: field, message: "is required")
            }
            return value
        }
        try self.init(
            instanceID: instanceID ?? required(String.self, "instance_id", "a string"),
            userID: required(String.self, "user_id", "a string"),
            orgID: optional(String.self, "org_id", "a string"),
            cgroup: optional(String.self, "cgroup", "a string"),
            interfaces: optional([String].self, "interfaces", "a list of interface names") ?? [],
            disks: optional([String].self, "disks", "a list of paths") ?? [],
            gpus: optional(Self.GPUList.self, "gpus", "a list of GPU indexes or UUIDs")?.values ?? [],
            vcpus: optional(Int.self, "vcpus", "a whole number of CPUs") ?? 1)
    }

    /// GPUs may be written as numbers (`[0, 1]`) or strings (`["GPU-…"]`).
    private struct GPUList: Decodable {
        var values: [String]
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            var values: [String] = []
            while !container.isAtEnd {
                if let index = try? container.decode(Int.self) {
                    values.append(String(index))
                } else {
                    values.append(try container.decode(String.self))
                }
            }
            self.values = values
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(instanceID, forKey: Key("instance_id"))
        try container.encode(userID, forKey: Key("user_id"))
        try container.encode(orgID, forKey: Key("org_id"))
        try container.encode(cgroup, forKey: Key("cgroup"))
        try container.encode(interfaces, forKey: Key("interfaces"))
        try container.encode(disks, forKey: Key("disks"))
        try container.encode(gpus, forKey: Key("gpus"))
        try container.encode(vcpus, forKey: Key("vcpus"))
    }

    /// Decodes one manifest from JSON (a `PUT /instances/{id}` body, a stored row).
    public static func decode(json data: Data) throws(InstanceManifestError) -> InstanceManifest {
        do {
            return try JSONDecoder().decode(InstanceManifest.self, from: data)
        } catch let error as InstanceManifestError {
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            throw InstanceManifestError(field: "", message: "not valid JSON: \(context.debugDescription)")
        } catch {
            throw InstanceManifestError(field: "", message: "not a manifest: \(error)")
        }
    }

    /// Its JSON, keys sorted: what is stored and served.
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings, an integer and lists of strings: encoding cannot fail.
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }
}

/// Why a manifest was refused: the field (`interfaces[1]`, empty for the whole document) and what
/// is wrong with it.
public struct InstanceManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}
