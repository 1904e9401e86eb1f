import Foundation
import UsageModel

/// One alert of a request to Alertmanager, with where it came from in the book.
struct AlertItem: DeliveryItem {
    enum Origin: Sendable, Equatable {
        case active(AlertBook.Key)
        /// A pending resolve, by its label set.
        case resolve([String: String])
    }

    var origin: Origin
    var alert: AlertmanagerAlert
    var attempts: Int
    var logName: String { alert.labels["alertname"] ?? "" }
}

/// What the notifier tells Alertmanager: the active alerts, each sent again every
/// `resendSeconds` with `endsAt` `validitySeconds` ahead, and the resolves not yet delivered. Pure:
/// time is an input; the delivery loop takes its requests from it.
///
/// A firing event makes its alert active; a resolved event turns it into a pending resolve, with
/// `endsAt` at the resolve (the event's timestamp), until Alertmanager takes it. An alert is
/// identified by host, rule and instance; the labels it was first sent with are the ones its
/// resends and its resolve carry, so Alertmanager sees one alert. At most `maxPendingResolves`
/// resolves are kept; beyond it the oldest are dropped (Alertmanager ends those by their endsAt).
///
/// Every active alert and pending resolve goes in one request, due at once after a change and
/// `resendSeconds` after an answered request; a failed one is due again after the loop's backoff.
struct AlertBook: DeliverySource {
    static var refusalMessage: String { "alertmanager refused an alert; not sending it again" }

    struct Key: Hashable, Comparable, Sendable {
        var hostID: String
        var rule: String
        var instanceID: String

        init(_ event: ThresholdEvent) {
            hostID = event.hostID
            rule = event.rule
            instanceID = event.instanceID
        }

        static func < (lhs: Key, rhs: Key) -> Bool {
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

    let settings: AlertmanagerSettings

    private(set) var active: [Key: Active] = [:]
    /// Pending resolves by label set.
    private(set) var resolves: [[String: String]: Resolve] = [:]
    private(set) var resolvesDropped = 0
    /// When the next request is due; 0: at once.
    private(set) var dueAt: Double = 0
    /// No request before this: the backoff after a failure.
    private(set) var backoffUntil: Double = 0
    /// Requests that failed in a row.
    private(set) var failures = 0
    /// Bumped by every change: a request answered after a change does not clear the need to send.
    private var generation = 0
    private var generationTaken = 0
    /// A graceful shutdown began; `drained`: its one request was offered.
    private var draining = false
    private var drained = false

    /// A book holding the alerts of `firing` (after a restart: what still fires); other events
    /// are ignored.
    init(settings: AlertmanagerSettings, firing: [ThresholdEvent] = []) {
        self.settings = settings
        for event in firing where event.state == .firing {
            active[Key(event)] = Active(
                labels: AlertmanagerAlert.labels(of: event), annotations: AlertmanagerAlert.annotations(of: event),
                startsAt: Date(timeIntervalSince1970: Double(event.period.start)))
        }
    }

    /// Takes threshold events, in order, and makes what changed due at once (or at the end of a
    /// backoff). Returns the resolves dropped for room, for the log.
    mutating func apply(_ events: [ThresholdEvent], now: Double) -> [Resolve] {
        guard !events.isEmpty else { return [] }
        var dropped: [Resolve] = []
        for event in events {
            let key = Key(event)
            switch event.state {
            case .firing:
                let labels = AlertmanagerAlert.labels(of: event)
                if let known = active[key], known.labels != labels {
                    // The same alert with other labels would be another alert to Alertmanager:
                    // end the old one.
                    dropped += queueResolve(known, at: Double(event.period.start))
                }
                resolves[labels] = nil
                active[key] = Active(
                    labels: labels, annotations: AlertmanagerAlert.annotations(of: event),
                    startsAt: Date(timeIntervalSince1970: Double(event.period.start)))
            case .resolved:
                let annotations = AlertmanagerAlert.annotations(of: event)
                if var known = active.removeValue(forKey: key) {
                    known.annotations = annotations
                    dropped += queueResolve(known, at: Double(event.timestamp))
                } else {
                    // Not known here (rebuilt without it): end it under the labels the event gives.
                    dropped += queueResolve(
                        Active(
                            labels: AlertmanagerAlert.labels(of: event), annotations: annotations,
                            startsAt: Date(timeIntervalSince1970: Double(event.period.start))),
                        at: Double(event.timestamp))
                }
            }
        }
        generation += 1
        dueAt = min(dueAt, max(now, backoffUntil))
        return dropped
    }

    /// Active alerts (not refused) with endsAt `validitySeconds` ahead, then pending resolves, in a
    /// stable order: what a request sent now would hold.
    func outgoing(now: Double) -> [AlertItem] {
        let endsAt = Date(timeIntervalSince1970: now + settings.validitySeconds)
        let firing = active.filter { !$0.value.refused }.sorted { $0.key < $1.key }.map { key, alert in
            AlertItem(
                origin: .active(key),
                alert: AlertmanagerAlert(
                    labels: alert.labels, annotations: alert.annotations, startsAt: alert.startsAt,
                    endsAt: max(endsAt, alert.startsAt), generatorURL: settings.generatorURL),
                attempts: failures + 1)
        }
        return firing + pendingResolves()
    }

    private func pendingResolves() -> [AlertItem] {
        resolves.sorted { ($0.value.endsAt, $0.key.count) < ($1.value.endsAt, $1.key.count) }.map { labels, resolve in
            AlertItem(
                origin: .resolve(labels),
                alert: AlertmanagerAlert(
                    labels: resolve.labels, annotations: resolve.annotations, startsAt: resolve.startsAt,
                    endsAt: resolve.endsAt, generatorURL: settings.generatorURL),
                attempts: failures + 1)
        }
    }

    // MARK: Delivery source

    mutating func take(now: Double) -> [AlertItem] {
        if draining {
            // One more try for the resolves; active alerts end by their endsAt unless the next
            // agent sends them again, so a restart does not resolve and re-fire them.
            guard !drained else { return [] }
            drained = true
            return pendingResolves()
        }
        guard now >= dueAt else { return [] }
        let items = outgoing(now: now)
        guard !items.isEmpty else {
            dueAt = now + settings.resendSeconds
            return []
        }
        generationTaken = generation
        return items
    }

    /// The next request is due at `dueAt` while anything is active or a resolve is pending (a
    /// resend, a retry after the backoff); with nothing to send, only a new event wakes the loop.
    func nextWorkAt(now: Double) -> Double? {
        if draining { return drained ? nil : now }
        return active.isEmpty && resolves.isEmpty ? nil : dueAt
    }

    mutating func acknowledge(_ batch: [AlertItem], now: Double) {
        for item in batch {
            // A resolve queued again meanwhile (another endsAt) stays pending.
            if case .resolve(let labels) = item.origin, resolves[labels]?.endsAt == item.alert.endsAt { resolves[labels] = nil }
        }
        answered(now: now)
    }

    mutating func retry(_ batch: [AlertItem], at time: Double, error: String) {
        failures += 1
        backoffUntil = max(backoffUntil, time)
        dueAt = backoffUntil
    }

    /// A 400, 413 or 422 for this one alert: a verdict on it. It is not sent again.
    mutating func refuse(_ batch: [AlertItem], reason: String, now: Double) {
        for item in batch {
            switch item.origin {
            case .active(let key): active[key]?.refused = true
            case .resolve(let labels): if resolves[labels]?.endsAt == item.alert.endsAt { resolves[labels] = nil }
            }
        }
        answered(now: now)
    }

    /// The book's waits are wall times too: a backoff lasts at most the retry cap, and with none
    /// under way the next request waits at most `resendSeconds`.
    mutating func boundWaits(now: Double, retryCap: Double) -> Int {
        backoffUntil = min(backoffUntil, now + retryCap)
        let latest = now + (failures > 0 ? retryCap : settings.resendSeconds)
        guard dueAt > latest else { return 0 }
        dueAt = latest
        return active.count + resolves.count
    }

    mutating func startDrain() {
        draining = true
    }

    // MARK: State

    private mutating func answered(now: Double) {
        failures = 0
        backoffUntil = 0
        dueAt = generation == generationTaken ? now + settings.resendSeconds : now
    }

    private mutating func queueResolve(_ alert: Active, at seconds: Double) -> [Resolve] {
        // Alertmanager refuses an alert that ends before it starts.
        let endsAt = max(Date(timeIntervalSince1970: seconds), alert.startsAt)
        resolves[alert.labels] = Resolve(
            labels: alert.labels, annotations: alert.annotations, startsAt: alert.startsAt, endsAt: endsAt)
        guard resolves.count > settings.maxPendingResolves,
            let oldest = resolves.min(by: { $0.value.endsAt < $1.value.endsAt })
        else { return [] }
        resolves[oldest.key] = nil
        resolvesDropped += 1
        return [oldest.value]
    }
}
