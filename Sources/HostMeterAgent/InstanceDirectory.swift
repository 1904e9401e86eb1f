#if canImport(Glibc)
import Glibc
#endif
import Foundation
public import Metering
import Probes
import Yams
import InputGuards
public import RuntimeState

/// The manifest files of `instances_dir`: one instance per `*.yaml`, `*.yml` or `*.json` file.
///
/// `scan()` runs with every instance sample, so a file added, changed or removed is picked up
/// within one. It costs a directory listing and one stat(2) per file; a file is read again only
/// when its inode, size or modification time changed. Hidden files and editors' and dpkg's
/// leftovers (`.vm.yaml.swp`, `vm.yaml~`, `vm.yaml.dpkg-old`) are not manifests.
///
/// Files are read and parsed off the sampler's thread by a `ManifestReader`, each within a
/// deadline: a scan waits at most `scanWait` for them, and a file not read by then is read by a
/// later scan. At most `maxManifests` files are read (`max_instances`): the files already in
/// effect, then the others in name order; the rest are problems naming them.
public struct InstanceDirectory: Sendable {
    public let path: String
    /// Manifests beyond this size are refused: a manifest is a few hundred bytes.
    public static let maxFileBytes = 64 * 1024
    public static let suffixes = [".yaml", ".yml", ".json"]
    /// How long one file may take to read and parse: a manifest of `maxFileBytes` parses in
    /// milliseconds.
    public static let defaultParseDeadline = Duration.seconds(2)
    /// How long a scan waits for the files it queued before it returns without them.
    public static let defaultScanWait = Duration.seconds(1)
    /// Files beyond `maxManifests` named one by one in the problems; the rest are counted.
    static let namedOverflow = 100

    /// What a scan found.
    public struct Scan: Sendable {
        /// Valid manifests by file, in file-name order.
        public var manifests: [(file: String, manifest: InstanceManifest)]
        /// Files refused, with the field and line that is wrong.
        public var problems: [ManifestProblem]
        /// Files still being read that have no earlier version in effect: until they are read, the
        /// set of instances is not known (a renamed manifest would look removed).
        public var unread: [String]
    }

    private struct Parsed {
        var version: ManifestReader.FileVersion
        var result: Result<InstanceManifest, ManifestProblem>
        /// The file's last version that validated: kept in effect while a later edit is refused
        /// (or still being read), so a typo does not remove the VM (billing its final period)
        /// and re-add it from a new baseline, losing the usage in between.
        var lastValid: InstanceManifest?
    }

    public let maxManifests: Int
    let scanWait: Duration
    private let reader: ManifestReader
    private var cache: [String: Parsed] = [:]

    /// `maxManifests` is `max_instances`; `parseDeadline` bounds one file's read and parse.
    public init(
        path: String, maxManifests: Int = AgentConfiguration.defaultMaxInstances,
        parseDeadline: Duration = defaultParseDeadline, scanWait: Duration = defaultScanWait
    ) {
        self.init(
            path: path, maxManifests: maxManifests, parseDeadline: parseDeadline, scanWait: scanWait,
            load: { InstanceDirectory.load($0) })
    }

    /// With the function that reads one file: tests give it one without `YAMLGuard`, to see the
    /// deadline end a parse that Yams cannot finish.
    init(
        path: String, maxManifests: Int, parseDeadline: Duration, scanWait: Duration,
        load: @escaping ManifestReader.Load
    ) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.maxManifests = max(1, maxManifests)
        self.scanWait = scanWait
        reader = ManifestReader(deadline: parseDeadline, load: load)
    }

    /// What the directory holds now: valid manifests by file, in file-name order, and the files
    /// refused with the field and line that is wrong. A missing directory holds no instances; one
    /// that cannot be listed (permissions, I/O) keeps the manifests of the last scan in effect.
    public mutating func scan() -> Scan {
        guard let directory = opendir(path) else {
            let reason = errno
            if reason == ENOENT {
                cache = [:]
                return Scan(manifests: [], problems: [], unread: [])
            }
            let kept = cache.keys.sorted().compactMap { file in cache[file]?.lastValid.map { (file: file, manifest: $0) } }
            return Scan(
                manifests: kept,
                problems: [
                    ManifestProblem(
                        file: path,
                        message: "cannot list the directory: \(String(cString: strerror(reason))); the last manifests read stay in effect")
                ],
                unread: [])
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

        var problems: [ManifestProblem] = []
        if names.count > maxManifests {
            names = window(names, problems: &problems)
        }

        var listed: [(file: String, version: ManifestReader.FileVersion)] = []
        var requests: [ManifestReader.Request] = []
        for name in names {
            let file = path + "/" + name
            var info = stat()
            guard stat(file, &info) == 0 else { continue }  // removed since the listing
            guard (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let version = ManifestReader.FileVersion(
                inode: UInt64(info.st_ino), size: Int64(info.st_size),
                modifiedNanos: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
            listed.append((file, version))
            if cache[file]?.version != version { requests.append(ManifestReader.Request(file: file, version: version)) }
        }
        reader.submit(requests)
        let finished = reader.collect(waitingAtMost: requests.isEmpty ? .zero : scanWait)

        var manifests: [(file: String, manifest: InstanceManifest)] = []
        var unread: [String] = []
        var seen: [String: Parsed] = [:]
        for (file, version) in listed {
            var parsed: Parsed
            if let cached = cache[file], cached.version == version {
                parsed = cached
            } else if let result = finished[ManifestReader.Request(file: file, version: version)] {
                parsed = Parsed(version: version, result: result, lastValid: try? result.get())
                if parsed.lastValid == nil { parsed.lastValid = cache[file]?.lastValid }
            } else if let earlier = cache[file] {
                // Still being read: what the version read before gave stays meanwhile.
                parsed = earlier
            } else {
                unread.append(file)
                continue
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
        return Scan(manifests: manifests, problems: problems, unread: unread)
    }

    /// The `maxManifests` names to read: those read before first (a file added to a full
    /// directory does not displace a VM being billed), then the others in name order. The rest
    /// become problems, the first `namedOverflow` by name.
    private func window(_ names: [String], problems: inout [ManifestProblem]) -> [String] {
        let known = names.filter { cache[path + "/" + $0] != nil }
        let others = names.filter { cache[path + "/" + $0] == nil }
        let kept = Array((known + others).prefix(maxManifests))
        let keptSet = Set(kept)
        let left = names.filter { !keptSet.contains($0) }
        let reason =
            "\(path) holds \(names.count) manifest files, more than the \(maxManifests) instances this agent meters "
            + "(max_instances)"
        for name in left.prefix(Self.namedOverflow) {
            problems.append(ManifestProblem(file: path + "/" + name, message: "not read: " + reason))
        }
        if left.count > Self.namedOverflow {
            problems.append(
                ManifestProblem(file: path, message: "\(left.count - Self.namedOverflow) more files are not read: " + reason))
        }
        return kept.sorted()
    }

    /// Reads and validates one manifest file. `guarded: false` skips `YAMLGuard` (tests of the
    /// parse deadline only).
    static func load(_ file: String, guarded: Bool = true) -> Result<InstanceManifest, ManifestProblem> {
        let bytes: [UInt8]
        do {
            bytes = try FileReader.read(file, limit: maxFileBytes)
        } catch {
            return .failure(ManifestProblem(file: file, message: "\(error)"))
        }
        return parse(String(decoding: bytes, as: UTF8.self), file: file, guarded: guarded)
    }

    /// Parses a manifest's YAML (JSON is YAML too). The message names the field and its line.
    public static func parse(_ text: String, file: String) -> Result<InstanceManifest, ManifestProblem> {
        parse(text, file: file, guarded: true)
    }

    static func parse(_ text: String, file: String, guarded: Bool) -> Result<InstanceManifest, ManifestProblem> {
        if guarded {
            do {
                try YAMLGuard.check(text, maxBytes: maxFileBytes)
            } catch {
                return .failure(ManifestProblem(file: file, message: "\(error)"))
            }
        }
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
