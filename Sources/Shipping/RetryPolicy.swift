public import Foundation

/// Full-jitter exponential backoff: sleep = random(0, min(cap, base · 2^attempt)).
///
/// Full jitter spreads the retries of many agents after a consumer outage instead of having them
/// return in waves. A `Retry-After` from the consumer takes precedence when it asks for longer.
public struct RetryPolicy: Sendable, Equatable {
    public var baseSeconds: Double
    public var capSeconds: Double

    public init(baseSeconds: Double = 1, capSeconds: Double = 300) {
        precondition(baseSeconds > 0 && capSeconds >= baseSeconds, "retry: need 0 < base ≤ cap")
        self.baseSeconds = baseSeconds
        self.capSeconds = capSeconds
    }

    /// The ceiling of the random delay before retry number `attempt` (0 for the first retry).
    public func ceiling(attempt: Int) -> Double {
        // 2^attempt overflows Double's exactness long after it passes any cap; stop at 2^62.
        let exponent = Double(1 << min(max(attempt, 0), 62))
        return min(capSeconds, baseSeconds * exponent)
    }

    /// The delay before retry `attempt`, drawn from `random`; at least `retryAfter` when the
    /// consumer gave one (capped at the policy's cap, so a hostile header cannot park the agent).
    public func delay(
        attempt: Int, retryAfter: Double? = nil, using random: inout some RandomNumberGenerator
    ) -> Double {
        let jittered = Double.random(in: 0...ceiling(attempt: attempt), using: &random)
        guard let retryAfter else { return jittered }
        return max(jittered, min(max(retryAfter, 0), capSeconds))
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    /// Seconds to wait from `now`, or nil for a missing or unreadable value. A date in the past is 0.
    public static func seconds(_ value: String?, now: Date) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber) {
            return Double(value)
        }
        guard let date = httpDate(value) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    /// Parses the three HTTP-date forms: IMF-fixdate, and the obsolete RFC 850 and asctime forms.
    public static func httpDate(_ value: String) -> Date? {
        for format in formats {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: value) { return date }
        }
        return nil
    }

    private static let formats = [
        "EEE, dd MMM yyyy HH:mm:ss 'GMT'",  // Sun, 06 Nov 1994 08:49:37 GMT
        "EEEE, dd-MMM-yy HH:mm:ss 'GMT'",  // Sunday, 06-Nov-94 08:49:37 GMT
        "EEE MMM d HH:mm:ss yyyy",  // Sun Nov  6 08:49:37 1994
    ]
}
