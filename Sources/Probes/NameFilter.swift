#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Selects names (interfaces, devices, mount points) with shell glob patterns, as fnmatch(3)
/// matches them: `*`, `?` and `[...]`; `*` also matches `/`.
///
/// A name is selected when it matches at least one `include` pattern (or `include` is empty) and
/// no `exclude` pattern. Globs rather than regular expressions: they are what operators write in
/// YAML without escaping, and fnmatch is allocation-free.
public struct NameFilter: Sendable, Equatable, Codable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String] = [], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    public func selects(_ name: String) -> Bool {
        if !include.isEmpty, !include.contains(where: { Self.matches(pattern: $0, name) }) { return false }
        return !exclude.contains(where: { Self.matches(pattern: $0, name) })
    }

    public static func matches(pattern: String, _ name: String) -> Bool {
        fnmatch(pattern, name, 0) == 0
    }
}
