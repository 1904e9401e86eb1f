import InputGuards
import Yams

extension AgentConfiguration {
    /// Applies `HOSTMETER_…` variables to the parsed YAML: each value is read as YAML (so `30` is a
    /// number, `[a, b]` a list) and replaces the key's value in the file. A `HOSTMETER_` variable
    /// that names no key is refused, so a typo does not silently do nothing.
    static func applyEnvironment(
        _ environment: [String: String], to root: Node?, file: String
    ) throws(ConfigurationError) -> (root: Node?, overridden: [String: String]) {
        let byName = Dictionary(uniqueKeysWithValues: keys.map { ($0.environmentName, $0) })
        var root = root ?? Node.mapping(Node.Mapping([]))
        var overridden: [String: String] = [:]
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("HOSTMETER_") {
            guard let key = byName[name] else {
                throw ConfigurationError(
                    file: "environment", line: nil, key: name,
                    message: "no configuration key is set by this variable (e.g. HOSTMETER_SINK_URL sets sink.url)")
            }
            let value: Node
            try YAMLGuard.check(text) {
                ConfigurationError(file: "environment", line: nil, key: key.path, message: "\(name): \($0)")
            }
            do {
                value = try Yams.compose(yaml: text) ?? Node("", Tag(.null))
            } catch {
                throw ConfigurationError(file: "environment", line: nil, key: key.path, message: "\(name) is not valid YAML: \(error)")
            }
            guard let updated = setting(value, at: key.path.split(separator: ".").map(String.init), in: root) else {
                throw ConfigurationError(
                    file: file, line: nil, key: key.path, message: "cannot apply \(name): a parent of this key is not a mapping")
            }
            root = updated
            overridden[key.path] = name
        }
        return (root, overridden)
    }

    private static func setting(_ value: Node, at path: [String], in node: Node) -> Node? {
        guard let first = path.first else { return value }
        guard case .mapping(var mapping) = node else {
            if node.null != nil { return setting(value, at: path, in: .mapping(Node.Mapping([]))) }
            return nil
        }
        let child = mapping[first] ?? Node.mapping(Node.Mapping([]))
        guard let updated = setting(value, at: Array(path.dropFirst()), in: child) else { return nil }
        mapping[first] = updated
        return .mapping(mapping)
    }
}
