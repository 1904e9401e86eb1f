import Foundation
import Logging
import Outbox
import TestSupport
import Testing

@testable import Shipping
import UsageModel

/// The shipper against a real loopback consumer that misbehaves on request. Every wait is bounded.
@Suite(.serialized) struct ShipperIntegrationTests {
    static let fast = ShipperSettings(
        batchMaxEvents: 50, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.4), failureThreshold: 100,
        openSeconds: 0.5, longestWaitSeconds: 0.05, drainSeconds: 0)

    static var quietLogger: Logger {
        var logger = Logger(label: "test.shipper")
        logger.logLevel = .critical
        return logger
    }

    /// Runs a shipper until the outbox is empty or `seconds` pass; returns the shipper's status.
    @discardableResult
    func ship(
        _ outbox: FilledOutbox, to sink: any Sink, settings: ShipperSettings = fast, seconds: Double = 20,
        until done: (@Sendable (OutboxStats) -> Bool)? = nil
    ) async throws -> ShipperSnapshot {
        let service = ShipperService(database: outbox.database, sink: sink, settings: settings, logger: Self.quietLogger)
        let task = Task { try await service.run() }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let stats = try outbox.database.stats()
            if done?(stats) ?? (stats.pendingEvents == 0) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        _ = try? await task.value
        await sink.shutdown()
        return service.status.snapshot
    }

    func httpSink(
        _ consumer: LoopbackConsumer, timeout: Double = 5, cloudEvents: Bool = false,
        subject: CloudEventSubject = .instanceID, compression: BodyCompression = .none
    ) throws -> HTTPSink {
        try HTTPSink(
            settings: HTTPSink.Settings(
                url: cloudEvents ? consumer.cloudEventsURL : consumer.eventsURL, format: cloudEvents ? .cloudEvents : .json,
                hostID: "host-1", token: "secret-token", headers: [("X-Tenant", "t-1")], connectTimeoutSeconds: 1,
                requestTimeoutSeconds: timeout, subject: subject, compression: compression))
    }

    @Test func afterAnOutageEveryEventArrivesExactlyOnce() async throws {
        let consumer = try LoopbackConsumer()
        // The consumer is down (connections refused), then answers 503 three times.
        let outage = try FilledOutbox(events: 400)
        // AsyncHTTPClient keeps trying to connect until the request's deadline, so a refused port
        // shows as a connect or timeout failure once the deadline (0.5 s here) has passed.
        try await consumer.setMode(["mode": "refuse"])
        let shipping = Task { try await ship(outage, to: try httpSink(consumer, timeout: 0.5)) }
        // Refuse until the shipper has leased a batch (a busy test process may start it late), then
        // 2 s more, four times the request's deadline, for that attempt to fail against the outage.
        let leased = Date().addingTimeInterval(30)
        while try outage.database.stats().attemptedEvents == 0, Date() < leased {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(2000))
        try await consumer.setMode(["mode": "status", "status": 503, "count": 3])
        let status = try await shipping.value
        #expect(status.failures[.connect, default: 0] + status.failures[.timeout, default: 0] > 0, "\(status.failures)")
        // The consumer answered 503 exactly three times; under load a 503 can arrive after the
        // 0.5 s deadline and count as a timeout instead, so the shipper saw at least one, at most 3.
        let answered = try await consumer.stats().by_status["503", default: 0]
        #expect(answered == 3, "consumer answered 503 \(answered) times")
        #expect((1...3).contains(status.failures[.http5xx, default: 0]), "\(status.failures)")

        // Then it stores two batches but cuts the connection before answering: the shipper cannot
        // know they arrived and sends them again; the consumer's dedupe keeps each event once.
        let ambiguous = try FilledOutbox(events: 200, instance: "vm-2")
        try await consumer.setMode(["mode": "cut_after_store", "count": 2])
        try await ship(ambiguous, to: try httpSink(consumer))

        let stats = try await consumer.stats()
        for outbox in [outage, ambiguous] {
            let pending = try outbox.database.stats()
            #expect(pending.pendingEvents == 0 && pending.deadLetters == 0)
        }
        #expect(stats.unique_events == 600)
        #expect(stats.duplicates > 0, "cut_after_store should have caused resends")
        let received = Set(try await consumer.events().compactMap { $0["event_id"] as? String })
        #expect(received == Set(outage.eventIDs + ambiguous.eventIDs))
    }

    @Test func theBreakerOpensAndBoundsRequestsWhileOpen() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 10)
        try await consumer.setMode(["mode": "status", "status": 500])
        var settings = Self.fast
        settings.failureThreshold = 3
        settings.openSeconds = 1
        let started = Date()
        let status = try await ship(outbox, to: try httpSink(consumer), settings: settings, seconds: 10) { _ in false }
        let elapsed = Date().timeIntervalSince(started)
        let requests = try await consumer.stats().requests
        // 3 failures open it for 1 s; each failed probe doubles the open time (2 s, 4 s): in 10 s that
        // is 3 + probes at ~1, ~3 and ~7 s. Without the breaker it would be dozens. 10 s rather than
        // a shorter run: on a loaded 2-core machine the 3 failures that open it can take seconds.
        #expect(requests >= 4 && requests <= 7, "\(requests) requests in \(elapsed) s")
        #expect(status.breakerState.gaugeValue == 1)
        #expect(try outbox.database.stats().pendingEvents == 10)
    }

    @Test func aHalfOpenProbeThatSucceedsClosesTheBreaker() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 120)
        try await consumer.setMode(["mode": "status", "status": 502, "count": 2])
        var settings = Self.fast
        settings.failureThreshold = 2
        settings.openSeconds = 0.5
        let status = try await ship(outbox, to: try httpSink(consumer), settings: settings)
        #expect(status.breakerState == .closed)
        #expect(try await consumer.stats().unique_events == 120)
    }

    @Test func retryAfterIsHonoured() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 5)
        try await consumer.setMode(["mode": "status", "status": 429, "retry_after": "2", "count": 1])
        var settings = Self.fast
        settings.retry = RetryPolicy(baseSeconds: 0.05, capSeconds: 5)
        let started = Date()
        try await ship(outbox, to: try httpSink(consumer), settings: settings)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 1.9, "delivered after \(elapsed) s despite Retry-After: 2")
        #expect(try await consumer.stats().unique_events == 5)
    }

    @Test(arguments: [false, true])
    func gzipBodiesArriveWholeAndSmaller(cloudEvents: Bool) async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 300)
        let plainBytes = cloudEvents
            ? try BatchEncoder.cloudEventsBatch(outbox.events, hostID: "host-1").count
            : BatchEncoder.jsonArray(outbox.events).count
        try await ship(outbox, to: try httpSink(consumer, cloudEvents: cloudEvents, compression: .gzip))
        #expect(try await consumer.stats().unique_events == 300)
        #expect(try outbox.database.stats().pendingEvents == 0)
        let requests = try await consumer.requests()
        #expect(!requests.isEmpty && requests.allSatisfy { $0["content_encoding"] as? String == "gzip" })
        let wireBytes = requests.compactMap { $0["body_bytes"] as? Int }.reduce(0, +)
        #expect(wireBytes > 0 && wireBytes * 4 < plainBytes, "\(wireBytes) bytes on the wire for \(plainBytes) of JSON")
    }

    @Test func cloudEventsCarryTheConfiguredSubjectAndAnEventWithoutOneIsDeadLettered() async throws {
        let consumer = try LoopbackConsumer()
        // Every fifth event has no organisation: it cannot be attributed to one.
        let outbox = try FilledOutbox(events: 40) { $0 % 5 == 0 ? nil : "org-\($0 % 3)" }
        try await ship(outbox, to: try httpSink(consumer, cloudEvents: true, subject: .orgID))
        let dead = try outbox.database.deadLetters()
        let orphans = outbox.eventIDs.enumerated().filter { $0.offset % 5 == 0 }.map(\.element)
        #expect(Set(dead.map(\.event.eventID)) == Set(orphans))
        #expect(dead.allSatisfy { $0.reason.contains("no_subject") && $0.reason.contains("org_id") })
        #expect(try await consumer.stats().unique_events == 32)
        let subjects = try await consumer.requests().filter { $0["status"] as? Int == 200 }.flatMap { request in
            (try? JSONDecoder().decode([String].self, from: Data(((request["subjects"] as? String) ?? "[]").utf8))) ?? []
        }
        #expect(subjects.count == 32 && Set(subjects) == ["org-0", "org-1", "org-2"])

        let byUser = try FilledOutbox(events: 3)
        let userConsumer = try LoopbackConsumer()
        try await ship(byUser, to: try httpSink(userConsumer, cloudEvents: true, subject: .userID))
        #expect(try await userConsumer.requests().compactMap { $0["subjects"] as? String } == [#"["u-1", "u-1", "u-1"]"#])
    }

    /// A usage commitment has no instance and no owner: its CloudEvent is about the host, whatever
    /// `sink.subject` says, and is delivered, never dead-lettered for want of a subject.
    @Test func aCommitmentIsACloudEventAboutTheHost() async throws {
        let outbox = try FilledOutbox(events: 2)
        let commitment = try UsageCommitment.make(
            leaves: [CommitmentLeaf(instanceID: "vm-1", seq: 1, hash: String(repeating: "b", count: 64), period: Period(start: 0, end: 30))],
            after: nil, hostID: "hv-1", timestamp: 31, identity: SigningIdentity.generate())
        try outbox.database.commit(
            MeteringCommit(events: [
                OutboxEvent(
                    eventID: commitment.eventID, eventType: UsageCommitment.eventType, instanceID: "", periodStart: 0,
                    periodEnd: 30, payload: Data(try commitment.wireJSON()), userID: nil, orgID: nil)
            ]))
        let consumer = try LoopbackConsumer()
        try await ship(outbox, to: try httpSink(consumer, cloudEvents: true, subject: .userID))
        #expect(try outbox.database.deadLetters().isEmpty)
        #expect(try await consumer.stats().unique_events == 3)
        let subjects = try await consumer.requests().filter { $0["status"] as? Int == 200 }.flatMap { request in
            (try? JSONDecoder().decode([String].self, from: Data(((request["subjects"] as? String) ?? "[]").utf8))) ?? []
        }
        #expect(subjects.sorted() == ["host-1", "u-1", "u-1"], "\(subjects)")
        #expect(BatchEncoder.cloudEventType(UsageCommitment.eventType) == "io.hostmeter.commitment.v1")
    }

    @Test func aBacklogDrainsNoFasterThanTheCap() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 600)
        var settings = Self.fast
        // The burst (200) and one batch (50) go at once, the other 350 at 200 a second: 1.75 s.
        settings.maxEventsPerSecond = 200
        let started = Date()
        try await ship(outbox, to: try httpSink(consumer), settings: settings)
        let elapsed = Date().timeIntervalSince(started)
        #expect(try await consumer.stats().unique_events == 600)
        #expect(elapsed >= 1.7, "600 events at 200 a second went in \(elapsed) s")
    }

    @Test func aJustClosedPeriodWaitsForTheHostsOffsetAndABacklogDoesNot() async throws {
        let consumer = try LoopbackConsumer()
        // Ten events of long ago and one whose period ends now: the old ones go at once, the new
        // one 1.5 s after its end.
        let old = try FilledOutbox(events: 10)
        let justEnded = Int64(Date().timeIntervalSince1970.rounded(.down))
        let fresh = try FilledOutbox(events: 1, instance: "vm-2", firstPeriodStart: justEnded - 30)
        try old.database.commit(MeteringCommit(events: fresh.events))
        var settings = Self.fast
        settings.holdSeconds = 1.5
        let started = Date()
        try await ship(old, to: try httpSink(consumer), settings: settings) { $0.pendingEvents <= 1 }
        let backlog = Date().timeIntervalSince(started)
        #expect(try await consumer.stats().unique_events == 10)
        try await ship(old, to: try httpSink(consumer), settings: settings)
        let releasedAfter = Date().timeIntervalSince1970 - Double(justEnded)
        #expect(backlog < 1.4, "the backlog waited \(backlog) s")
        #expect(releasedAfter >= 1.5, "the fresh event went \(releasedAfter) s after its period ended")
        #expect(try await consumer.stats().unique_events == 11)
        #expect(try old.database.stats().pendingEvents == 0)
    }

    @Test func onlyThePoisonEventIsDeadLettered() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 37)
        let poison = outbox.eventIDs[23]
        try await consumer.setMode(["mode": "poison", "event_ids": [poison]])
        try await ship(outbox, to: try httpSink(consumer))
        let dead = try outbox.database.deadLetters()
        #expect(dead.map(\.event.eventID) == [poison])
        #expect(dead.first?.reason.contains("400") == true)
        #expect(try await consumer.stats().unique_events == 36)
        // Replayed, it goes again once the consumer takes it.
        try await consumer.setMode(["mode": "ok"])
        #expect(try outbox.database.replay(eventIDs: [poison]) == 1)
        try await ship(outbox, to: try httpSink(consumer))
        #expect(try await consumer.stats().unique_events == 37)
    }

    @Test func aHangPastTheTimeoutAndCutConnectionsAreRetried() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 60)
        try await consumer.setMode(["mode": "hang", "seconds": 30, "count": 1])
        let started = Date()
        let status = try await ship(outbox, to: try httpSink(consumer, timeout: 0.5))
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(status.failures[.timeout, default: 0] >= 1)
        try await consumer.setMode(["mode": "cut", "count": 2])
        let more = try FilledOutbox(events: 30, instance: "vm-2")
        let cut = try await ship(more, to: try httpSink(consumer))
        #expect(cut.failures.values.reduce(0, +) >= 2)
        #expect(try await consumer.stats().unique_events == 90)
    }

    /// A rotated token, a proxy wanting credentials, a wrong path: failures of the endpoint, not
    /// verdicts on the events. Retried with backoff until the endpoint takes them; nothing is
    /// dead-lettered.
    @Test(arguments: [401, 403, 404, 407])
    func aRefusingEndpointIsRetriedAndNothingIsDeadLettered(status: Int) async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 8)
        try await consumer.setMode(["mode": "status", "status": status, "count": 3])
        let shipped = try await ship(outbox, to: try httpSink(consumer))
        #expect(try outbox.database.deadLetters().isEmpty)
        #expect(try outbox.database.stats().pendingEvents == 0)
        #expect(try await consumer.stats().unique_events == 8)
        #expect(try await consumer.stats().by_status["\(status)"] == 3)
        let failures = shipped.failures.first { $0.key.rawValue == "http_\(status)" }?.value
        #expect(failures == 3, "\(shipped.failures)")
        #expect(shipped.eventsDeadLettered == 0)
    }

    /// A wrong URL path answers 404 to every request: each one counts in the circuit breaker, which
    /// opens and bounds the requests; every event stays in the outbox, and the shipper says why.
    @Test func aWrongURLPathOpensTheBreakerAndKeepsEveryEvent() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 10)
        var settings = Self.fast
        settings.failureThreshold = 3
        settings.openSeconds = 1
        let sink = try HTTPSink(
            settings: HTTPSink.Settings(
                url: "http://127.0.0.1:\(consumer.port)/no-such-path", format: .json, hostID: "host-1",
                connectTimeoutSeconds: 1, requestTimeoutSeconds: 5))
        let status = try await ship(outbox, to: sink, settings: settings, seconds: 3.5) { _ in false }
        let requests = try await consumer.stats()
        // 3 failures open it for 1 s; the probe fails and it opens for 2 s: 4 to 6 requests in 3.5 s.
        #expect(requests.requests >= 4 && requests.requests <= 6, "\(requests.requests) requests")
        #expect(requests.by_status["404"] == requests.requests)
        #expect(status.breakerState.gaugeValue == 1)
        #expect(try outbox.database.stats().pendingEvents == 10)
        #expect(try outbox.database.deadLetters().isEmpty)
        #expect(status.lastError?.hasPrefix("HTTP 404") == true, "\(String(describing: status.lastError))")
    }

    /// A 2xx is the consumer's acknowledgement whatever its body: a body over the read limit is read
    /// up to the limit, and the events are delivered once, not sent again forever.
    @Test func aSuccessWithABodyOverTheReadLimitIsDelivered() async throws {
        let responder = try FixedResponder(status: 200, body: Data(repeating: UInt8(ascii: "x"), count: 1 << 20))
        defer { responder.stop() }
        let outbox = try FilledOutbox(events: 5)
        let sink = try HTTPSink(
            settings: HTTPSink.Settings(
                url: "http://127.0.0.1:\(responder.port)/events", format: .json, hostID: "host-1",
                connectTimeoutSeconds: 1, requestTimeoutSeconds: 5))
        let status = try await ship(outbox, to: sink, seconds: 5)
        #expect(try outbox.database.stats().pendingEvents == 0)
        #expect(try outbox.database.deadLetters().isEmpty)
        #expect(status.eventsDelivered == 5)
        #expect(responder.requests == 1, "sent \(responder.requests) times")
        #expect(status.failures.isEmpty, "\(status.failures)")
    }

    /// Any other answer with a body over the limit is classified by its status, not as a read error.
    @Test func aFailureWithABodyOverTheReadLimitKeepsItsStatus() async throws {
        let responder = try FixedResponder(status: 503, body: Data(repeating: UInt8(ascii: "y"), count: 1 << 20))
        defer { responder.stop() }
        let outbox = try FilledOutbox(events: 3)
        let sink = try HTTPSink(
            settings: HTTPSink.Settings(
                url: "http://127.0.0.1:\(responder.port)/events", format: .json, hostID: "host-1",
                connectTimeoutSeconds: 1, requestTimeoutSeconds: 5))
        let status = try await ship(outbox, to: sink, seconds: 1) { _ in false }
        #expect(status.failures[.http5xx, default: 0] >= 1, "\(status.failures)")
        #expect(status.failures[.io] == nil, "\(status.failures)")
        #expect(try outbox.database.stats().pendingEvents == 3)
    }

    @Test func requestsCarryTheTokenAndAStableIdempotencyKey() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 3)
        // The first attempt is answered 503; the resend of the same batch carries the same key.
        try await consumer.setMode(["mode": "status", "status": 503, "count": 1])
        try await ship(outbox, to: try httpSink(consumer))
        let requests = try await consumer.requests()
        #expect(requests.count == 2)
        let keys = requests.compactMap { $0["idempotency_key"] as? String }
        #expect(keys.count == 2 && keys[0] == keys[1] && keys[0].count == 64)
        #expect(requests.allSatisfy { $0["authorization"] as? String == "Bearer secret-token" })
        #expect(requests.allSatisfy { ($0["content_type"] as? String)?.hasPrefix("application/json") == true })
    }

    @Test func cloudEventsBatchesPassTheCloudEventsSDK() async throws {
        let consumer = try LoopbackConsumer()
        let outbox = try FilledOutbox(events: 75)
        try await ship(outbox, to: try httpSink(consumer, cloudEvents: true))
        let stats = try await consumer.stats()
        #expect(stats.by_status["400"] == nil, "the CloudEvents SDK refused a batch")
        #expect(stats.unique_events == 75)
        #expect(try outbox.database.stats().pendingEvents == 0)
    }
}
