/// A manifest file that was refused, and why (the message names the field and line).
public struct ManifestProblem: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var file: String
    public var message: String

    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}
