#if canImport(Glibc)
import Glibc
#endif
public import AgentAPI
import Foundation
public import Metering
import Probes
import Yams

/// The manifest files of `instances_dir`: one instance per `*.yaml`, `*.yml` or `*.json` file.
///
/// `scan()` runs with every sample, so a file added, changed or removed is picked up within one
/// sample. It costs a directory listing and one stat(2) per file; a file is parsed again only when
/// its inode, size or modification time changed. Hidden files and editors' and dpkg's leftovers
/// (`.vm.yaml.swp`, `vm.yaml~`, `vm.yaml.dpkg-old`) are not manifests.
public struct InstanceDirectory: Sendable {
    public let path: String
    /// Manifests beyond this size are refused: a manifest is a few hundred bytes.
    public static let maxFileBytes = 64 * 1024
    public static let suffixes = [".yaml", ".yml", ".json"]

    private struct Stamp: Equatable {
        var inode: UInt64
        var size: Int64
        var modifiedNanos: Int64
    }

    private struct Parsed {
        var stamp: Stamp
        var result: Result<InstanceManifest, ManifestProblem>
        /// The file's last version that validated: kept in effect while a later edit is refused,
        /// so a typo does not remove the VM (billing its final period) and re-add it from a new
        /// baseline, losing the usage in between.
        var lastValid: InstanceManifest?
    }

    private var cache: [String: Parsed] = [:]

    public init(path: String) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// What the directory holds now: valid manifests by file, in file-name order, and the files
    /// refused with the field and line that is wrong. A missing directory holds no instances; one
    /// that cannot be listed (permissions, I/O) keeps the manifests of the last scan in effect.
    public mutating func scan() -> (manifests: [(file: String, manifest: InstanceManifest)], problems: [ManifestProblem]) {
        guard let directory = opendir(path) else {
            let reason = errno
            if reason == ENOENT {
                cache = [:]
                return ([], [])
            }
            let kept = cache.keys.sorted().compactMap { file in cache[file]?.lastValid.map { (file: file, manifest: $0) } }
            return (
                kept,
                [ManifestProblem(
                    file: path,
                    message: "cannot list the directory: \(String(cString: strerror(reason))); the last manifests read stay in effect")]
            )
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if !name.hasPrefix("."), Self.suffixes.contains(where: { name.hasSuffix($0) }) { names.append(name) }
        }
        closedir(directory)
        names.sort()

        var manifests: [(file: String, manifest: InstanceManifest)] = []
        var problems: [ManifestProblem] = []
        var seen: [String: Parsed] = [:]
        for name in names {
            let file = path + "/" + name
            var info = stat()
            guard stat(file, &info) == 0 else { continue }  // removed since the listing
            guard (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let stamp = Stamp(
                inode: UInt64(info.st_ino), size: Int64(info.st_size),
                modifiedNanos: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
            var parsed: Parsed
            if let cached = cache[file], cached.stamp == stamp {
                parsed = cached
            } else {
                let result = Self.load(file)
                parsed = Parsed(stamp: stamp, result: result, lastValid: try? result.get())
                if parsed.lastValid == nil { parsed.lastValid = cache[file]?.lastValid }
            }
            seen[file] = parsed
            switch parsed.result {
            case .success(let manifest):
                manifests.append((file, manifest))
            case .failure(var problem):
                if let lastValid = parsed.lastValid {
                    manifests.append((file, lastValid))
                    problem.message += "; its last valid version stays in effect"
                }
                problems.append(problem)
            }
        }
        cache = seen
        return (manifests, problems)
    }

    /// Reads and validates one manifest file.
    static func load(_ file: String) -> Result<InstanceManifest, ManifestProblem> {
        let bytes: [UInt8]
        do {
            bytes = try FileReader.read(file, limit: maxFileBytes)
        } catch {
            return .failure(ManifestProblem(file: file, message: "\(error)"))
        }
        return parse(String(decoding: bytes, as: UTF8.self), file: file)
    }

    /// Parses a manifest's YAML (JSON is YAML too). The message names the field and its line.
    public static func parse(_ text: String, file: String) -> Result<InstanceManifest, ManifestProblem> {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                return .failure(ManifestProblem(file: file, message: "empty file; a manifest needs instance_id and user_id"))
            }
            node = composed
        } catch {
            return .failure(ManifestProblem(file: file, message: "not valid YAML: \(error)"))
        }
        do {
            return .success(try YAMLDecoder().decode(InstanceManifest.self, from: node))
        } catch {
            let manifestError = (error as? InstanceManifestError)
                ?? InstanceManifestError(field: "", message: "\(error)")
            let line = Self.line(of: manifestError.field, in: node) ?? node.mark?.line
            let location = line.map { "line \($0): " } ?? ""
            return .failure(ManifestProblem(file: file, message: location + manifestError.description))
        }
    }

    /// The line of `field` (`interfaces[1]`, `vcpus`) in the document, when it is there.
    static func line(of field: String, in node: Node) -> Int? {
        guard !field.isEmpty else { return nil }
        var name = field
        var index: Int?
        if let open = field.firstIndex(of: "["), field.hasSuffix("]") {
            name = String(field[..<open])
            index = Int(field[field.index(after: open)..<field.index(before: field.endIndex)])
        }
        guard let child = node[name] else { return nil }
        if let index, case .sequence(let items) = child, index < items.count { return items[index].mark?.line }
        if case .mapping(let mapping) = node, let key = mapping.keys.first(where: { $0.string == name }) {
            return key.mark?.line
        }
        return child.mark?.line
    }
}
