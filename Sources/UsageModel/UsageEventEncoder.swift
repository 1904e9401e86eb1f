public import Foundation

/// Turns events into the bytes of the configured wire version.
public struct UsageEventEncoder: Sendable {
    public let version: UsageSchemaVersion

    public init(version: UsageSchemaVersion = .current) { self.version = version }

    public func encode(_ event: UsageEvent) throws -> Data {
        var event = event
        event.version = version.rawValue
        switch version {
        case .v1_0:
            // A version 1.1 would encode a `UsageEventV1_1` view here, with its extra optional fields.
            return Data(try event.wireJSON())
        }
    }
}
