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
            // 1.0 has no chain: whatever the event carries of one is not written.
            event.seq = nil
            event.prevHash = nil
            event.hash = nil
            return Data(try event.wireJSON())
        case .v1_1:
            guard event.seq != nil, event.hash != nil else { throw UnchainedEvent(eventID: event.eventID) }
            return Data(try event.wireJSON())
        }
    }
}

/// A 1.1 event must have its place in its instance's chain (`UsageEvent.chained(after:)`) before
/// it is encoded.
public struct UnchainedEvent: Error, CustomStringConvertible {
    public let eventID: String
    public var description: String { "UsageEvent \(eventID) has no seq and hash: 1.1 events are chained before they are encoded" }
}
