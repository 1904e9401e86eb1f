/// Why a delivery failed, from a bounded set: the label of the failure metric and the log field.
public enum ShipFailureReason: String, Sendable, CaseIterable, Codable {
    case connect
    case timeout
    case connectionClosed = "connection_closed"
    case http400 = "http_400"
    case http408 = "http_408"
    case http413 = "http_413"
    case http429 = "http_429"
    case http4xx = "http_4xx"
    case http5xx = "http_5xx"
    case unexpectedStatus = "unexpected_status"
    case io
}

/// What became of one delivery attempt.
public enum ShipOutcome: Sendable, Equatable {
    /// The consumer took every event of the batch.
    case delivered
    /// Try again later: the consumer or the path to it failed. `retryAfter` is the consumer's
    /// Retry-After in seconds, when it gave one.
    case retryable(reason: ShipFailureReason, detail: String, retryAfter: Double?)
    /// The consumer refused the batch for good. `bisectable`: the refusal may be caused by one
    /// event of the batch (400, 413), so halves are worth trying apart.
    case rejected(reason: ShipFailureReason, detail: String, bisectable: Bool)
}

/// Decides what an HTTP status means for a batch.
public enum ResponseClassifier {
    /// 2xx delivered; 408, 429 and 5xx retryable; 400 and 413 rejected but worth bisecting; other
    /// 4xx rejected; anything else (1xx, 3xx: a redirect is a misconfigured URL, not a verdict on
    /// the events) retryable, so nothing is dead-lettered by a proxy's mistake.
    public static func classify(status: Int, retryAfter: Double?, body: String) -> ShipOutcome {
        let detail = "HTTP \(status)" + (body.isEmpty ? "" : ": \(body.prefix(300))")
        switch status {
        case 200..<300: return .delivered
        case 408: return .retryable(reason: .http408, detail: detail, retryAfter: retryAfter)
        case 429: return .retryable(reason: .http429, detail: detail, retryAfter: retryAfter)
        case 500..<600: return .retryable(reason: .http5xx, detail: detail, retryAfter: retryAfter)
        case 400: return .rejected(reason: .http400, detail: detail, bisectable: true)
        case 413: return .rejected(reason: .http413, detail: detail, bisectable: true)
        case 401..<500: return .rejected(reason: .http4xx, detail: detail, bisectable: false)
        default: return .retryable(reason: .unexpectedStatus, detail: detail, retryAfter: retryAfter)
        }
    }
}
