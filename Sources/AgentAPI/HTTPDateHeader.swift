#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The `Date` header of the API's responses (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37
/// GMT"), formatted at most once a second and only when a response asks for it.
///
/// Hummingbird's `Application` keeps the header fresh with a one-second timer, which wakes the
/// process every second whether or not anyone asks (about seven context switches a second on
/// this stack, most of the agent's wake-ups at rest). Here the first response of a new second
/// formats it and the others of that second reuse it.
final class HTTPDateHeader: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    init() {}

    /// The header for the current wall-clock second.
    var now: String {
        let second = time(nil)
        return cached.withLock { cached in
            if cached.second != second { cached = (second, Self.format(second)) }
            return cached.text
        }
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate of `second` (unix seconds), always in GMT.
    static func format(_ second: Int) -> String {
        var clock = time_t(second)
        var parts = tm()
        gmtime_r(&clock, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
