import Yams

/// A typed, strict view of one YAML node of the configuration: every accessor either returns a
/// valid value or throws a `ConfigurationError` naming the key and line.
struct ConfigNode {
    let node: Node?
    let key: String
    let file: String

    var line: Int? { node?.mark.map(\.line) }

    var isNull: Bool {
        guard let node else { return true }
        if case .scalar(let scalar) = node, scalar.tag.rawValue == Tag.Name.null.rawValue || node.null != nil {
            return true
        }
        return false
    }

    func error(_ message: String) -> ConfigurationError {
        ConfigurationError(file: file, line: line, key: key, message: message)
    }

    func child(_ name: String) -> ConfigNode {
        ConfigNode(node: node?[name], key: key.isEmpty ? name : "\(key).\(name)", file: file)
    }

    /// The keys of a mapping, refusing any not in `allowed` (nil: any key). A missing or null node
    /// is an empty mapping.
    func mapping(allowed: Set<String>?) throws(ConfigurationError) -> [String: ConfigNode] {
        guard !isNull, let node else { return [:] }
        guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
        var children: [String: ConfigNode] = [:]
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.string else {
                throw ConfigurationError(file: file, line: keyNode.mark?.line, key: key, message: "keys must be strings")
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if let allowed, !allowed.contains(name) {
                let known = allowed.sorted().joined(separator: ", ")
                throw ConfigurationError(
                    file: file, line: keyNode.mark?.line, key: path, message: "unknown key (known here: \(known))")
            }
            children[name] = ConfigNode(node: valueNode, key: path, file: file)
        }
        return children
    }

    /// The keys of this section of the configuration, refusing any that the key table
    /// (`AgentConfiguration.keys`) does not list under it.
    func section() throws(ConfigurationError) -> [String: ConfigNode] {
        try mapping(allowed: AgentConfiguration.keyNames(in: key))
    }

    /// An integer within the range the key table gives this key.
    func int(default value: Int) throws(ConfigurationError) -> Int {
        try int(default: value, in: AgentConfiguration.key(key).integerRange)
    }

    /// A number within the range the key table gives this key.
    func double(default value: Double) throws(ConfigurationError) -> Double {
        try double(default: value, in: AgentConfiguration.key(key).decimalRange)
    }

    /// true or false; a missing or null node is `value`.
    func bool(default value: Bool) throws(ConfigurationError) -> Bool {
        if isNull { return value }
        guard let bool = node?.bool else { throw error("expected true or false") }
        return bool
    }

    private var scalarText: String? {
        guard let node, case .scalar(let scalar) = node else { return nil }
        return scalar.string
    }

    func string(default value: String) throws(ConfigurationError) -> String {
        try optionalString() ?? value
    }

    func optionalString() throws(ConfigurationError) -> String? {
        if isNull { return nil }
        guard let text = scalarText else { throw error("expected a string") }
        return text
    }

    func int(default value: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        if isNull { return value }
        guard let text = scalarText, let number = Int(text) else { throw error("expected an integer, got \(describe)") }
        guard range.contains(number) else {
            throw error("must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    func double(default value: Double, in range: ClosedRange<Double>) throws(ConfigurationError) -> Double {
        if isNull { return value }
        guard let text = scalarText, let number = Double(text), number.isFinite else {
            throw error("expected a number, got \(describe)")
        }
        guard range.contains(number) else {
            throw error("must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    func choice<T: RawRepresentable & CaseIterable>(default value: T) throws(ConfigurationError) -> T
    where T.RawValue == String {
        guard let text = try optionalString() else { return value }
        guard let choice = T(rawValue: text) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw error("must be one of \(allowed), got '\(text)'")
        }
        return choice
    }

    func sequence() throws(ConfigurationError) -> [ConfigNode] {
        guard !isNull, let node else { return [] }
        guard case .sequence(let sequence) = node else { throw error("expected a list") }
        return sequence.enumerated().map { ConfigNode(node: $1, key: "\(key)[\($0)]", file: file) }
    }

    func strings() throws(ConfigurationError) -> [String] {
        var result: [String] = []
        for item in try sequence() {
            guard let text = try item.optionalString() else { throw item.error("expected a string") }
            result.append(text)
        }
        return result
    }

    private var describe: String {
        scalarText.map { "'\($0)'" } ?? "a \(node.map(kind) ?? "missing value")"
    }

    private func kind(_ node: Node) -> String {
        switch node {
        case .scalar: "scalar"
        case .mapping: "mapping"
        case .sequence: "list"
        case .alias: "alias"
        }
    }
}
