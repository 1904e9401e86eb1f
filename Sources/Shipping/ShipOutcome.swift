/// Why a delivery failed, from a bounded set: the label of the failure metric and the log field.
public enum ShipFailureReason: String, Sendable, CaseIterable, Codable {
    case connect
    case timeout
    case connectionClosed = "connection_closed"
    case http400 = "http_400"
    case http401 = "http_401"
    case http403 = "http_403"
    case http404 = "http_404"
    case http407 = "http_407"
    case http408 = "http_408"
    case http413 = "http_413"
    case http422 = "http_422"
    case http429 = "http_429"
    /// Another 4xx: a refusal of the request by the endpoint (405, 409, 410, 415, …), retried.
    case http4xx = "http_4xx"
    case http5xx = "http_5xx"
    case unexpectedStatus = "unexpected_status"
    case io
    /// The event has no value for the CloudEvents subject the sink sends (`sink.subject`): the
    /// sink refuses it before sending, and the shipper dead-letters it.
    case noSubject = "no_subject"
    /// A broker has nothing that stores the event's subject (NATS: no JetStream stream listens on
    /// it); retried, since a stream may be created.
    case noResponders = "no_responders"
    /// The broker refused the publish for a reason that is not about one event (JetStream: the
    /// stream is not the expected one, it is full, sealed; Kafka: the topic does not exist, or
    /// authorisation): retried, and shown by `/health`, since a person must look.
    case brokerRefused = "broker_refused"
    /// The broker's credentials were refused (NATS authorisation, Kafka SASL): retried, shown by
    /// `/health`.
    case authentication
    /// The broker refused one event for good (larger than the stream's or server's largest
    /// message): bisected down to that event, which is dead-lettered.
    case brokerRejected = "broker_rejected"

    /// The endpoint refused the request itself — credentials (401, 407), permission (403), the URL
    /// (404) or another 4xx that is not about the events — rather than failing or judging an event.
    /// It says nothing about the events and will not pass by itself: a person must look.
    public var isEndpointRefusal: Bool {
        switch self {
        case .http401, .http403, .http404, .http407, .http4xx, .brokerRefused, .authentication: true
        default: false
        }
    }
}

/// What became of one delivery attempt.
public enum ShipOutcome: Sendable, Equatable {
    /// The consumer took every event of the batch.
    case delivered
    /// Try again later: the consumer or the path to it failed. `retryAfter` is the consumer's
    /// Retry-After in seconds, when it gave one.
    case retryable(reason: ShipFailureReason, detail: String, retryAfter: Double?)
    /// The consumer refused the batch for good: a verdict on what was sent. `bisectable`: the
    /// refusal may be caused by one event of the batch (400, 413, 422), so halves are worth trying
    /// apart; a single event refused is dead-lettered.
    case rejected(reason: ShipFailureReason, detail: String, bisectable: Bool)
}

/// Decides what an HTTP status means for a batch.
///
/// Only an answer about the events may take them out of the outbox: a 2xx (the consumer stored
/// them) or a verdict on their content (400, 413, 422), which the shipper bisects so that only the
/// event it is about is dead-lettered. Everything else is a failure of the endpoint or of the path
/// to it and is retried with backoff, counted by the circuit breaker: 408, 429 and 5xx, which pass
/// by themselves; 401, 403, 404, 407 and the other 4xx, which need a person (a rotated token, a
/// wrong URL) and are shown by `/health`; and 1xx or 3xx (a redirect is a misconfigured URL). A
/// rotated token must never turn the backlog into dead letters.
public enum ResponseClassifier {
    public static func classify(status: Int, retryAfter: Double?, body: String) -> ShipOutcome {
        let detail = "HTTP \(status)" + (body.isEmpty ? "" : ": \(body.prefix(300))")
        let retry = { (reason: ShipFailureReason) in ShipOutcome.retryable(reason: reason, detail: detail, retryAfter: retryAfter) }
        switch status {
        case 200..<300: return .delivered
        case 400: return .rejected(reason: .http400, detail: detail, bisectable: true)
        case 413: return .rejected(reason: .http413, detail: detail, bisectable: true)
        case 422: return .rejected(reason: .http422, detail: detail, bisectable: true)
        case 401: return retry(.http401)
        case 403: return retry(.http403)
        case 404: return retry(.http404)
        case 407: return retry(.http407)
        case 408: return retry(.http408)
        case 429: return retry(.http429)
        case 400..<500: return retry(.http4xx)
        case 500..<600: return retry(.http5xx)
        default: return retry(.unexpectedStatus)
        }
    }
}
