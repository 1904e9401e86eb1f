import Synchronization

/// A view's JSON, encoded on first use and then kept.
///
/// The snapshot is replaced whole after every sample, so a view held here is encoded at most once
/// per sample, by the first request that needs it, and not at all when nobody asks: a sample does
/// no encoding for the API, and requests between two samples copy bytes.
public final class EncodedOnce: Sendable {
    private let encode: @Sendable () -> [UInt8]
    private let bytes = Mutex<[UInt8]?>(nil)

    /// Encodes `value` with `encode` when first asked.
    public init<Value: Sendable>(_ value: Value, encode: @escaping @Sendable (Value) -> [UInt8]) {
        self.encode = { encode(value) }
    }

    /// JSON that is already encoded.
    public init(bytes: [UInt8]) {
        self.encode = { bytes }
    }

    /// The JSON; the first call encodes it (concurrent first calls wait for that one encoding).
    public var json: [UInt8] {
        bytes.withLock { cached in
            if let cached { return cached }
            let encoded = encode()
            cached = encoded
            return encoded
        }
    }

    /// Whether the JSON was encoded yet (tests: a sample alone encodes nothing).
    public var isEncoded: Bool { bytes.withLock { $0 != nil } }
}
