import CompressNIO
public import NIOCore

/// How request bodies go to an HTTP consumer (`sink.compression`): as they are, or gzip with
/// `Content-Encoding: gzip`. Usage events are repetitive JSON, so gzip sends several times fewer
/// bytes per event (`hostmeter-bench outbox` prints both) for a little CPU per batch.
public enum BodyCompression: String, Sendable, CaseIterable {
    case none
    case gzip

    /// The `Content-Encoding` header value, nil when the body is sent as it is.
    public var contentEncoding: String? {
        switch self {
        case .none: nil
        case .gzip: "gzip"
        }
    }

    /// `body` encoded. zlib cannot fail on a whole buffer given its bound, but should it, the
    /// error is the caller's to classify: a body that could not be made is not sent.
    public func encode(_ body: ByteBuffer) throws -> ByteBuffer {
        switch self {
        case .none:
            return body
        case .gzip:
            var input = body
            return try input.compress(with: .gzip())
        }
    }
}
