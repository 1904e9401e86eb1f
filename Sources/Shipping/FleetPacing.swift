public import Crypto
import Foundation

/// Where in the fleet's spread one host sends: 10,000 hosts close their periods on the same
/// wall-clock boundary, and without pacing all of them would send in the same second.
///
/// A host's offset is a fixed fraction of `sink.spread_seconds`, from SHA-256 of its host_id: stable
/// across restarts (a host keeps its slot) and uniform over the fleet, with no coordination. Each
/// period's events wait that long after the period ends (`ShipperSettings.holdSeconds`).
public enum FleetPacing {
    /// `spreadSeconds` × a fraction in [0, 1) taken from the first 8 bytes of SHA-256(host_id).
    public static func offset(hostID: String, spreadSeconds: Double) -> Double {
        guard spreadSeconds > 0 else { return 0 }
        let digest = SHA256.hash(data: Data(hostID.utf8))
        let word = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return spreadSeconds * (Double(word >> 11) / Double(UInt64(1) << 53))
    }
}
