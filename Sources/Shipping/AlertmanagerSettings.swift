/// How the Alertmanager notifier reaches Alertmanager and how often it repeats itself.
public struct AlertmanagerSettings: Sendable {
    /// Alertmanager's base URL (`alerting.alertmanager_url`, e.g. http://127.0.0.1:9093).
    public var url: String
    /// How often the firing alerts are sent again.
    public var resendSeconds: Double
    /// How far in the future a firing alert's `endsAt` is set at each send. If the agent stops
    /// sending (it died, the host is gone), Alertmanager resolves the alert by itself then.
    public var validitySeconds: Double
    public var retry: RetryPolicy
    public var failureThreshold: Int
    public var openSeconds: Double
    public var connectTimeoutSeconds: Double
    public var requestTimeoutSeconds: Double
    /// `generatorURL` of every alert (e.g. the agent's `/thresholds`); left out when nil.
    public var generatorURL: String?
    /// Extra request headers (an `Authorization` for a proxy in front of Alertmanager, say).
    public var headers: [(String, String)]
    /// Resolves not yet delivered that are kept; beyond it the oldest are dropped (Alertmanager
    /// still ends those alerts once their last `endsAt` passes).
    public var maxPendingResolves: Int

    /// The resend cadence for a metering interval: every period, at most 60 s apart.
    ///
    /// Alertmanager resolves an alert whose `endsAt` has passed, and Prometheus sends its alerts
    /// again every minute at most, with `endsAt` 4 resend intervals ahead; hostmeter does the
    /// same, so three lost resends in a row are survived and a dead agent's alerts end within
    /// 4 × cadence (2 min with 30 s periods).
    public static func resendSeconds(intervalSeconds: Double) -> Double { min(max(intervalSeconds, 1), 60) }

    public init(
        url: String, intervalSeconds: Double = 30, resendSeconds: Double? = nil, validitySeconds: Double? = nil,
        retry: RetryPolicy = RetryPolicy(), failureThreshold: Int = 5, openSeconds: Double = 30,
        connectTimeoutSeconds: Double = 5, requestTimeoutSeconds: Double = 10, generatorURL: String? = nil,
        headers: [(String, String)] = [], maxPendingResolves: Int = 10_000
    ) {
        let resend = resendSeconds ?? Self.resendSeconds(intervalSeconds: intervalSeconds)
        precondition(resend > 0, "alertmanager: the resend interval must be positive")
        self.url = url
        self.resendSeconds = resend
        self.validitySeconds = max(validitySeconds ?? 4 * resend, resend)
        self.retry = retry
        self.failureThreshold = failureThreshold
        self.openSeconds = openSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.generatorURL = generatorURL
        self.headers = headers
        self.maxPendingResolves = max(1, maxPendingResolves)
    }

    /// The longest the notifier sleeps between rounds: a quarter of the resend cadence, so a wall
    /// clock stepped back (resend times are wall times) delays a resend by at most that, far
    /// inside an alert's validity (at least one resend interval, by default four). The loop
    /// otherwise sleeps until the next resend or retry is due, or a committed event wakes it.
    public var longestWaitSeconds: Double { resendSeconds / 4 }

    /// The loop's retry, breaker and drain settings. A graceful shutdown has one request's time to
    /// deliver the pending resolves.
    var deliveryPolicy: DeliveryPolicy {
        DeliveryPolicy(
            retry: retry, failureThreshold: failureThreshold, openSeconds: openSeconds, longestWaitSeconds: longestWaitSeconds,
            drainSeconds: requestTimeoutSeconds)
    }

    /// `<url>/api/v2/alerts`.
    public var alertsURL: String {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/api/v2/alerts"
    }
}
