import AsyncHTTPClient
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle
public import UsageModel

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

    /// `<url>/api/v2/alerts`.
    public var alertsURL: String {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/api/v2/alerts"
    }
}

/// What the notifier is doing, for /health and /metrics.
public struct AlertmanagerSnapshot: Sendable, Equatable {
    public var activeAlerts = 0
    public var pendingResolves = 0
    public var breakerState: CircuitBreaker.State = .closed
    public var requests = 0
    public var alertsSent = 0
    public var alertsRejected = 0
    public var resolvesDropped = 0
    public var failures: [ShipFailureReason: Int] = [:]
    public var lastError: String?
    public var lastSuccessAt: Double?
}

/// One alert as Alertmanager's v2 API takes it (`postableAlert`).
public struct AlertmanagerAlert: Sendable, Equatable, Encodable {
    public var labels: [String: String]
    public var annotations: [String: String]
    public var startsAt: Date
    public var endsAt: Date
    public var generatorURL: String?

    enum CodingKeys: String, CodingKey {
        case labels, annotations, startsAt, endsAt, generatorURL
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(labels, forKey: .labels)
        try container.encode(annotations, forKey: .annotations)
        try container.encode(Self.rfc3339(startsAt), forKey: .startsAt)
        try container.encode(Self.rfc3339(endsAt), forKey: .endsAt)
        try container.encodeIfPresent(generatorURL, forKey: .generatorURL)
    }

    /// RFC 3339 in UTC with milliseconds, as Alertmanager parses it.
    static func rfc3339(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// The labels Alertmanager identifies the alert of `event` by: `alertname` (the rule),
    /// `severity`, `instance_id`, `user_id`, `host_id`, `org_id` when set, and the rule's own
    /// labels. hostmeter's labels win over a rule label of the same name, so a rule cannot make
    /// two instances' alerts one.
    public static func labels(of event: ThresholdEvent) -> [String: String] {
        var labels = event.labels
        labels["alertname"] = event.rule
        labels["severity"] = event.severity
        labels["instance_id"] = event.instanceID
        labels["user_id"] = event.userID
        labels["host_id"] = event.hostID
        if let org = event.orgID { labels["org_id"] = org } else { labels["org_id"] = nil }
        return labels
    }

    /// `summary` and `description`, and the numbers apart (`metric`, `value`, `threshold`, `op`)
    /// for templates. The value is the one the event was made with.
    public static func annotations(of event: ThresholdEvent) -> [String: String] {
        let value = number(event.value)
        let threshold = number(event.threshold)
        let comparison = "\(event.metric) \(event.op) \(number(event.threshold))"
        let summary: String
        let description: String
        switch event.state {
        case .firing:
            summary = "\(event.rule): \(comparison) on \(event.instanceID)"
            description =
                "\(event.metric) was \(value) (\(event.op) \(threshold)) on instance \(event.instanceID) of user "
                + "\(event.userID) on host \(event.hostID) in the period \(rfc3339(seconds: event.period.start)) to "
                + "\(rfc3339(seconds: event.period.end))."
        case .resolved:
            summary = "\(event.rule): resolved on \(event.instanceID)"
            description =
                "\(event.metric) was \(value), past the clear value \(threshold), on instance \(event.instanceID) of "
                + "user \(event.userID) on host \(event.hostID) in the period \(rfc3339(seconds: event.period.start)) "
                + "to \(rfc3339(seconds: event.period.end))."
        }
        return [
            "summary": summary, "description": description, "metric": event.metric, "value": value,
            "threshold": threshold, "op": event.op,
        ]
    }

    static func rfc3339(seconds: Int64) -> String { rfc3339(Date(timeIntervalSince1970: Double(seconds))) }

    /// A number as people write it: no ".0" on whole numbers, no exponent for ordinary sizes.
    static func number(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// Tells Alertmanager about threshold alerts: POST `<alertmanager_url>/api/v2/alerts`.
///
/// `apply(_:)` takes the threshold events of a committed period. A firing event makes its alert
/// active: it is sent at once, then again every `resendSeconds` with `endsAt` `validitySeconds`
/// ahead, as Alertmanager expects of a client (an alert not sent again ends by itself). A resolved
/// event sends the alert with `endsAt` at the resolve (the event's timestamp) until Alertmanager
/// takes it. An alert is identified by host, rule and instance; the labels it was first sent
/// with are the ones its resends and its resolve carry, so Alertmanager sees one alert.
///
/// Every request goes through the same `RetryPolicy` (full-jitter backoff, Retry-After) and
/// `CircuitBreaker` as the sinks, classified by the same `ResponseClassifier`: a refused request
/// (401, 403, 404, …) is retried, a 400 for a batch is bisected, and an alert Alertmanager refuses
/// on its own is not sent again. The active set lives in memory: build the notifier with the
/// firing events of the stored threshold states (`ThresholdEvaluator.firingEvents`) after a
/// restart. A graceful shutdown tries once more to deliver pending resolves and leaves active
/// alerts to their `endsAt`, so a restart does not resolve and re-fire them.
public actor AlertmanagerNotifier: Service {
    struct AlertKey: Hashable, Comparable {
        var hostID: String
        var rule: String
        var instanceID: String

        static func < (lhs: AlertKey, rhs: AlertKey) -> Bool {
            (lhs.hostID, lhs.rule, lhs.instanceID) < (rhs.hostID, rhs.rule, rhs.instanceID)
        }
    }

    struct Active {
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: Date
        /// Alertmanager refused it on its own: not sent again until a new firing event.
        var refused = false
    }

    struct Resolve: Equatable {
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: Date
        var endsAt: Date
    }

    /// Where an alert of a request came from, to record what Alertmanager said about it.
    enum Origin {
        case active(AlertKey)
        case resolve([String: String])
    }

    public nonisolated let settings: AlertmanagerSettings
    let logger: Logger
    let now: @Sendable () -> Double
    private let client: HTTPClient

    private var active: [AlertKey: Active] = [:]
    /// Pending resolves by label set.
    private var resolves: [[String: String]: Resolve] = [:]
    private var breaker: CircuitBreaker
    private var random = SystemRandomNumberGenerator()
    /// No request before this (backoff, Retry-After).
    private var backoffUntil: Double = 0
    /// When the next request is due.
    private var nextAttempt: Double = 0
    /// Bumped by `apply`: a request answered after a bump does not clear the need to send.
    private var generation = 0
    private var sleeper: Task<Void, Never>?
    private var status = AlertmanagerSnapshot()

    /// - Parameters:
    ///   - active: firing events of alerts that are active already (after a restart); applied as
    ///     `apply(_:)` would, and sent when `run()` starts.
    ///   - now: the clock, unix seconds.
    public init(
        settings: AlertmanagerSettings, logger: Logger, active events: [ThresholdEvent] = [],
        now: (@Sendable () -> Double)? = nil
    ) {
        self.settings = settings
        self.logger = logger
        self.now = now ?? { Date().timeIntervalSince1970 }
        breaker = CircuitBreaker(failureThreshold: settings.failureThreshold, openSeconds: settings.openSeconds)
        client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(
                    connect: .milliseconds(Int64(settings.connectTimeoutSeconds * 1000)),
                    read: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))))
        for event in events where event.state == .firing {
            let key = AlertKey(hostID: event.hostID, rule: event.rule, instanceID: event.instanceID)
            active[key] = Active(
                labels: AlertmanagerAlert.labels(of: event), annotations: AlertmanagerAlert.annotations(of: event),
                startsAt: Date(timeIntervalSince1970: Double(event.period.start)))
        }
        status.activeAlerts = active.count
    }

    /// Takes the threshold events of a committed period, in order, and sends what changed at once
    /// (or at the end of a backoff).
    public func apply(_ events: [ThresholdEvent]) {
        guard !events.isEmpty else { return }
        for event in events {
            let key = AlertKey(hostID: event.hostID, rule: event.rule, instanceID: event.instanceID)
            switch event.state {
            case .firing:
                let labels = AlertmanagerAlert.labels(of: event)
                if let known = active[key], known.labels != labels {
                    // The same alert with other labels would be another alert to Alertmanager:
                    // end the old one.
                    queueResolve(known, at: Double(event.period.start))
                }
                resolves[labels] = nil
                active[key] = Active(
                    labels: labels, annotations: AlertmanagerAlert.annotations(of: event),
                    startsAt: Date(timeIntervalSince1970: Double(event.period.start)))
            case .resolved:
                let annotations = AlertmanagerAlert.annotations(of: event)
                if var known = active.removeValue(forKey: key) {
                    known.annotations = annotations
                    queueResolve(known, at: Double(event.timestamp))
                } else {
                    // Not known here (rebuilt without it): end it under the labels the event gives.
                    queueResolve(
                        Active(
                            labels: AlertmanagerAlert.labels(of: event), annotations: annotations,
                            startsAt: Date(timeIntervalSince1970: Double(event.period.start))),
                        at: Double(event.timestamp))
                }
            }
        }
        generation += 1
        let now = self.now()
        nextAttempt = min(nextAttempt, max(now, backoffUntil))
        updateCounts()
        sleeper?.cancel()
    }

    /// The alerts that would be sent now: the active ones (endsAt ahead) and the pending resolves.
    public func pendingAlerts() -> [AlertmanagerAlert] {
        outgoing(now: now()).map(\.1)
    }

    public var snapshot: AlertmanagerSnapshot { status }

    public func run() async throws {
        logger.info("alertmanager notifier started", metadata: ["alertmanager.url": "\(settings.alertsURL)"])
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await step()
            let wait = nextAttempt - now()
            if wait > 0 {
                try? await cancelWhenGracefulShutdown { await self.pause(seconds: wait) }
            }
        }
        // Graceful shutdown: one more try for resolves not yet delivered; active alerts end by
        // their endsAt unless the next agent sends them again.
        if !Task.isCancelled, !resolves.isEmpty, breaker.allowsRequest(now: now()) {
            let items = resolves.sorted { $0.value.endsAt < $1.value.endsAt }.map { resolve in
                (Origin.resolve(resolve.key), alert(resolve.value))
            }
            _ = await deliver(items)
        }
        await shutdown()
        logger.info("alertmanager notifier stopped")
    }

    /// Closes the HTTP client; `run()` does it when it returns. Needed only for a notifier that was
    /// never run.
    public func shutdown() async {
        try? await client.shutdown()
    }

    // MARK: The loop

    private func pause(seconds: Double) async {
        let sleeper = Task { _ = try? await Task.sleep(for: .milliseconds(Int64((seconds * 1000).rounded(.up)))) }
        self.sleeper = sleeper
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        self.sleeper = nil
    }

    /// Sends everything if a request is due and allowed; sets `nextAttempt`.
    private func step() async {
        let start = now()
        guard start >= nextAttempt else { return }
        if let until = breaker.blockedUntil(now: start) {
            nextAttempt = until
            return
        }
        let items = outgoing(now: start)
        let generationSent = generation
        guard !items.isEmpty else {
            nextAttempt = start + settings.resendSeconds
            return
        }
        let before = breaker.state
        _ = breaker.allowsRequest(now: start)
        let answered = await deliver(items)
        let end = now()
        if answered {
            breaker.recordSuccess()
            backoffUntil = 0
            nextAttempt = generation == generationSent ? end + settings.resendSeconds : end
        } else {
            breaker.recordFailure(now: end)
            nextAttempt = max(backoffUntil, breaker.blockedUntil(now: end) ?? end)
        }
        if breaker.state != before {
            logger.log(
                level: breaker.state == .closed ? .info : .warning, "alertmanager circuit breaker changed",
                metadata: ["breaker.from": "\(before.name)", "breaker.to": "\(breaker.state.name)",
                           "breaker.failures": "\(breaker.consecutiveFailures)"])
        }
        status.breakerState = breaker.state
        updateCounts()
    }

    /// Active alerts (not refused) with endsAt `validitySeconds` ahead, then pending resolves, in a
    /// stable order.
    private func outgoing(now: Double) -> [(Origin, AlertmanagerAlert)] {
        let endsAt = Date(timeIntervalSince1970: now + settings.validitySeconds)
        let firing = active.filter { !$0.value.refused }.sorted { $0.key < $1.key }.map { key, alert in
            (
                Origin.active(key),
                AlertmanagerAlert(
                    labels: alert.labels, annotations: alert.annotations, startsAt: alert.startsAt,
                    endsAt: max(endsAt, alert.startsAt), generatorURL: settings.generatorURL)
            )
        }
        let ending = resolves.sorted { ($0.value.endsAt, $0.key.count) < ($1.value.endsAt, $1.key.count) }.map {
            (Origin.resolve($0.key), alert($0.value))
        }
        return firing + ending
    }

    private func alert(_ resolve: Resolve) -> AlertmanagerAlert {
        AlertmanagerAlert(
            labels: resolve.labels, annotations: resolve.annotations, startsAt: resolve.startsAt, endsAt: resolve.endsAt,
            generatorURL: settings.generatorURL)
    }

    /// POSTs `items`; a verdict (400, 413, 422) on more than one is bisected. Returns whether
    /// Alertmanager answered (took or refused them), as opposed to failing or not being reached.
    private func deliver(_ items: [(Origin, AlertmanagerAlert)]) async -> Bool {
        let outcome = await post(items.map(\.1))
        status.requests += 1
        switch outcome {
        case .delivered:
            status.alertsSent += items.count
            status.lastSuccessAt = now()
            status.lastError = nil
            for (origin, sent) in items {
                // A resolve queued again meanwhile (another endsAt) stays pending.
                if case .resolve(let labels) = origin, resolves[labels]?.endsAt == sent.endsAt { resolves[labels] = nil }
            }
            return true
        case .retryable(let reason, let detail, let retryAfter):
            status.failures[reason, default: 0] += 1
            status.lastError = detail
            let delay = settings.retry.delay(
                attempt: breaker.consecutiveFailures, retryAfter: retryAfter, using: &random)
            backoffUntil = now() + delay
            // 401, 403, 404, 407…: the request was refused (credentials, URL), not the alerts. Kept
            // and retried like any failure, but it will not pass by itself.
            logger.log(
                level: reason.isEndpointRefusal ? .error : .warning,
                reason.isEndpointRefusal
                    ? "alertmanager refused the request; check alerting.alertmanager_url and credentials; will retry"
                    : "alertmanager request failed; will retry",
                metadata: ["alertmanager.reason": "\(reason.rawValue)", "alertmanager.alerts": "\(items.count)",
                           "retry.in_seconds": "\(Int(delay.rounded()))", "error": "\(detail)"])
            return false
        case .rejected(let reason, let detail, let bisectable):
            status.failures[reason, default: 0] += 1
            status.lastError = detail
            if bisectable, items.count > 1 {
                let middle = items.count / 2
                guard await deliver(Array(items[..<middle])) else { return false }
                return await deliver(Array(items[middle...]))
            }
            // A 400, 413 or 422 for this one alert: a verdict on it. It is not sent again.
            status.alertsRejected += items.count
            for (origin, sent) in items {
                switch origin {
                case .active(let key): active[key]?.refused = true
                case .resolve(let labels): if resolves[labels]?.endsAt == sent.endsAt { resolves[labels] = nil }
                }
            }
            logger.error(
                "alertmanager refused an alert; not sending it again",
                metadata: ["alertmanager.reason": "\(reason.rawValue)",
                           "alert.name": "\(items.first?.1.labels["alertname"] ?? "")", "error": "\(detail)"])
            return true
        }
    }

    private func post(_ alerts: [AlertmanagerAlert]) async -> ShipOutcome {
        var request = HTTPClientRequest(url: settings.alertsURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "hostmeter")
        for (name, value) in settings.headers { request.headers.add(name: name, value: value) }
        do {
            request.body = .bytes(ByteBuffer(bytes: try Self.encoder.encode(alerts)))
        } catch {
            // Unreachable for string maps and dates; refusing is the honest outcome if it ever is.
            return .rejected(reason: .http400, detail: "cannot encode alerts: \(error)", bisectable: alerts.count > 1)
        }
        do {
            let response = try await client.execute(
                request, timeout: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))
            let text = try await HTTPSink.prefix(of: response.body)
            let retryAfter = RetryAfter.seconds(response.headers.first(name: "Retry-After"), now: Date())
            return ResponseClassifier.classify(
                status: Int(response.status.code), retryAfter: retryAfter, body: String(buffer: text))
        } catch {
            return HTTPSink.outcome(for: error)
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    // MARK: State

    private func queueResolve(_ alert: Active, at seconds: Double) {
        // Alertmanager refuses an alert that ends before it starts.
        let endsAt = max(Date(timeIntervalSince1970: seconds), alert.startsAt)
        resolves[alert.labels] = Resolve(
            labels: alert.labels, annotations: alert.annotations, startsAt: alert.startsAt, endsAt: endsAt)
        if resolves.count > settings.maxPendingResolves,
            let oldest = resolves.min(by: { $0.value.endsAt < $1.value.endsAt })
        {
            resolves[oldest.key] = nil
            status.resolvesDropped += 1
            logger.warning(
                "too many undelivered alert resolves; dropped the oldest (Alertmanager ends it at its endsAt)",
                metadata: ["alert.name": "\(oldest.key["alertname"] ?? "")"])
        }
    }

    private func updateCounts() {
        status.activeAlerts = active.count
        status.pendingResolves = resolves.count
    }
}
