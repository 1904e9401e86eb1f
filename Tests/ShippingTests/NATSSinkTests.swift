import Foundation
import Outbox
import TestSupport
import Testing

@testable import Shipping

/// The `nats` sink against Debian's nats-server with JetStream, started on 127.0.0.1 by each test.
@Suite(.serialized) struct NATSSinkTests {
    static let subject = try! NATSSubjectTemplate("usage.{org_id}.{user_id}.{instance_id}")

    func scratch(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("nats-\(name)-\(UUID().uuidString)")
    }

    func sink(_ urls: String, stream: String? = nil, token: String? = nil, ackTimeout: Double = 5, maxInFlight: Int = 1000)
        -> NATSSink
    {
        NATSSink(
            settings: NATSSink.Settings(
                servers: urls, subject: Self.subject, hostID: "host-1", stream: stream, token: token, connectTimeoutSeconds: 1,
                ackTimeoutSeconds: ackTimeout, maxInFlight: maxInFlight))
    }

    /// A started server with a stream `USAGE` on `usage.>`.
    func serverWithStream(
        _ name: String, maxMessageSize: Int32 = -1, extraConfig: String = "", token: String? = nil, user: String? = nil,
        password: String? = nil
    ) throws -> (NATSServer, JetStreamClient) {
        let server = try NATSServer(directory: scratch(name), extraConfig: extraConfig)
        try server.start()
        let client = try JetStreamClient(urls: server.url, token: token, user: user, password: password)
        try client.addStream("USAGE", subjects: ["usage.>"], maxMessageSize: maxMessageSize)
        return (server, client)
    }

    @Test func aBatchIsDeliveredOnItsPubAcksAndStoredOncePerEvent() async throws {
        let (server, client) = try serverWithStream("deliver")
        defer { server.kill9() }
        let outbox = try FilledOutbox(events: 120, org: { $0 % 2 == 0 ? "org.acme" : nil })
        // A window smaller than the batch: the rest is published as acknowledgements come back.
        let sink = sink(server.url, stream: "USAGE", maxInFlight: 16)
        #expect(await sink.send(outbox.events) == .delivered)
        // Sent again (a retry, a restart after kill -9): duplicate PubAcks count as delivered and
        // the stream keeps one message per event.
        #expect(await sink.send(Array(outbox.events[50..<120])) == .delivered)
        await sink.shutdown()

        let stored = try client.messages("USAGE")
        #expect(stored.count == 120)
        #expect(stored.map(\.messageID) == outbox.eventIDs)
        for (message, event) in zip(stored, outbox.events) {
            #expect(message.data == event.payload)
            #expect(message.headers["Content-Type"] == "application/json")
            #expect(message.headers["Hostmeter-Event-Type"] == "resource_usage")
        }
        // The organisation's dot is escaped, an absent one is `_`.
        #expect(stored[0].subject == "usage.org%2Eacme.u-1.vm-1")
        #expect(stored[1].subject == "usage._.u-1.vm-1")
    }

    @Test func noStreamOnTheSubjectIsRetriedAsNoResponders() async throws {
        let server = try NATSServer(directory: scratch("noresp"))
        try server.start()
        defer { server.kill9() }
        let outbox = try FilledOutbox(events: 3)
        let sink = sink(server.url)
        defer { Task { await sink.shutdown() } }
        guard case .retryable(let reason, let detail, _) = await sink.send(outbox.events) else {
            Issue.record("a publish nobody stores was not retried")
            return
        }
        #expect(reason == .noResponders)
        #expect(detail.contains("subject usage._.u-1.vm-1 "), "\(detail)")
        // Once a stream exists, the same events go.
        let client = try JetStreamClient(urls: server.url)
        try client.addStream("USAGE", subjects: ["usage.>"])
        #expect(await sink.send(outbox.events) == .delivered)
        #expect(try client.messages("USAGE").count == 3)
    }

    @Test func credentialsInAServerURLNeverReachAMessage() async throws {
        #expect(
            NATSSink.redacted("nats://hostmeter:s3cret@127.0.0.1:4222, tls://tok@10.0.0.1:4443,nats://plain:4222")
                == "nats://***@127.0.0.1:4222, tls://***@10.0.0.1:4443,nats://plain:4222")
        let port = try freeLoopbackPort()
        let sink = sink("nats://hostmeter:s3cret@127.0.0.1:\(port)")
        let outbox = try FilledOutbox(events: 1)
        guard case .retryable(_, let detail, _) = await sink.send(outbox.events) else {
            Issue.record("no retry without a server")
            return
        }
        #expect(!detail.contains("s3cret") && detail.contains("***@127.0.0.1:\(port)"), "\(detail)")
        await sink.shutdown()
    }

    /// A server's error text is kept to 300 characters in what reaches the log, `/health` and the
    /// dead letters, whatever the server sends.
    @Test func aServersErrorTextIsBounded() throws {
        let event = try FilledOutbox(events: 1).events[0]
        let settings = NATSSink.Settings(servers: "nats://127.0.0.1:1", subject: Self.subject, hostID: "host-1")
        let flood = String(repeating: "x", count: 100_000)
        for code: Int32 in [10054, 10077] {
            let outcome = NATSSink.outcome(of: .failed(status: 1, code: code, text: flood), event: event, settings: settings)
            switch outcome {
            case .rejected(_, let detail, _), .retryable(_, let detail, _): #expect(detail.count < 500, "\(detail.count)")
            case .delivered: Issue.record("a refusal counted as delivered")
            }
        }
    }

    @Test func anUnreachableServerIsAConnectFailure() async throws {
        let port = try freeLoopbackPort()
        let sink = sink("nats://127.0.0.1:\(port)")
        let outbox = try FilledOutbox(events: 2)
        guard case .retryable(let reason, let detail, _) = await sink.send(outbox.events) else {
            Issue.record("no retry without a server")
            return
        }
        #expect(reason == .connect)
        #expect(detail.contains("127.0.0.1:\(port)"))
        await sink.shutdown()
    }

    @Test func anEventLargerThanTheStreamTakesIsRejectedAndTheOthersAreNot() async throws {
        let outbox = try FilledOutbox(events: 4)
        // The stream's limit counts the headers too (the message id and two more: about 120 bytes).
        let largest = outbox.events.map(\.payload.count).max()!
        let (server, client) = try serverWithStream("toolarge", maxMessageSize: Int32(largest + 300))
        defer { server.kill9() }
        var big = outbox.events[2]
        big.payload = Data(#"{"user_id":"u-1","pad":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: largest + 300) + Data(#""}"#.utf8)
        let sink = sink(server.url)
        defer { Task { await sink.shutdown() } }
        guard case .rejected(let reason, let detail, let bisectable) = await sink.send([outbox.events[0], big]) else {
            Issue.record("a batch with an event the stream refuses was not rejected")
            return
        }
        #expect(reason == .brokerRejected)
        #expect(bisectable)
        #expect(detail.contains(big.eventID))
        #expect(await sink.send([outbox.events[0]]) == .delivered)
        #expect(try client.messages("USAGE").map(\.messageID) == [outbox.events[0].eventID])
    }

    @Test func aPubAckFromAnotherStreamThanTheExpectedOneIsARefusal() async throws {
        let (server, client) = try serverWithStream("expect")
        defer { server.kill9() }
        let outbox = try FilledOutbox(events: 2)
        let sink = sink(server.url, stream: "BILLING")
        defer { Task { await sink.shutdown() } }
        guard case .retryable(let reason, let detail, _) = await sink.send(outbox.events) else {
            Issue.record("a publish to the wrong stream was not refused")
            return
        }
        #expect(reason == .brokerRefused)
        #expect(reason.isEndpointRefusal)
        #expect(detail.contains("err_code"))
        #expect(try client.lastSequence("USAGE") == 0)
    }

    @Test func aWrongTokenIsAnAuthenticationFailure() async throws {
        let (server, client) = try serverWithStream(
            "token", extraConfig: "authorization { token: \"s3cret-token\" }\n", token: "s3cret-token")
        defer { server.kill9() }
        let outbox = try FilledOutbox(events: 2)
        let wrong = sink(server.url, token: "guess")
        guard case .retryable(let reason, _, _) = await wrong.send(outbox.events) else {
            Issue.record("a wrong token was not refused")
            return
        }
        #expect(reason == .authentication)
        await wrong.shutdown()
        let right = sink(server.url, token: "s3cret-token")
        #expect(await right.send(outbox.events) == .delivered)
        await right.shutdown()
        #expect(try client.messages("USAGE").count == 2)
    }

    @Test func userAndPasswordAuthenticate() async throws {
        let (server, client) = try serverWithStream(
            "user", extraConfig: "authorization { users: [ { user: hostmeter, password: \"pw-1\" } ] }\n", user: "hostmeter",
            password: "pw-1")
        defer { server.kill9() }
        _ = client
        let outbox = try FilledOutbox(events: 2)
        let make = { (password: String) in
            NATSSink(
                settings: NATSSink.Settings(
                    servers: server.url, subject: Self.subject, hostID: "host-1", user: "hostmeter", password: password,
                    connectTimeoutSeconds: 1, ackTimeoutSeconds: 5))
        }
        let wrong = make("nope")
        guard case .retryable(.authentication, _, _) = await wrong.send(outbox.events) else {
            Issue.record("a wrong password was not an authentication failure")
            return
        }
        await wrong.shutdown()
        let right = make("pw-1")
        #expect(await right.send(outbox.events) == .delivered)
        await right.shutdown()
    }

    /// NKey authentication: the server knows the user's public key, the sink signs the server's
    /// nonce with the seed from its file; another key's seed is refused.
    @Test func anNKeyAuthenticatesAndAnotherKeysSeedDoesNot() async throws {
        let directory = scratch("nkey")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = try NKeyPair()
        let other = try NKeyPair()
        let seedFile = directory.appendingPathComponent("user.seed")
        let otherSeedFile = directory.appendingPathComponent("other.seed")
        try (key.seed + "\n").write(to: seedFile, atomically: true, encoding: .utf8)
        try (other.seed + "\n").write(to: otherSeedFile, atomically: true, encoding: .utf8)
        let server = try NATSServer(
            directory: directory.appendingPathComponent("server"),
            extraConfig: "authorization { users: [ { nkey: \(key.publicKey) } ] }\n")
        try server.start()
        defer { server.kill9() }
        let client = try JetStreamClient(urls: server.url, nkey: key.publicKey, nkeySeedFile: seedFile.path)
        try client.addStream("USAGE", subjects: ["usage.>"])
        let outbox = try FilledOutbox(events: 3)
        let make = { (seed: URL) in
            NATSSink(
                settings: NATSSink.Settings(
                    servers: server.url, subject: Self.subject, hostID: "host-1", nkey: key.publicKey, nkeySeedFile: seed.path,
                    connectTimeoutSeconds: 1, ackTimeoutSeconds: 5))
        }
        try await expectRefusedThenDelivered(
            outbox.events, refused: make(otherSeedFile), right: make(seedFile), what: "another key's seed")
        #expect(try client.messages("USAGE").count == 3)
    }

    /// `refused` (wrong credentials) fails the batch as an authentication failure; `right` delivers
    /// it. The shipper retries what fails; so does this, for a few seconds of a loaded machine,
    /// saying what the last attempt met.
    func expectRefusedThenDelivered(_ events: [OutboxEvent], refused: NATSSink, right: NATSSink, what: String) async throws {
        let outcome = await refused.send(events)
        await refused.shutdown()
        guard case .retryable(.authentication, _, _) = outcome else {
            Issue.record("\(what) was not an authentication failure: \(outcome)")
            return
        }
        var delivered = await right.send(events)
        let deadline = Date().addingTimeInterval(10)
        while delivered != .delivered, Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            delivered = await right.send(events)
        }
        await right.shutdown()
        #expect(delivered == .delivered, "\(delivered)")
    }

    /// Decentralized authentication: a `.creds` file (a user JWT signed by an account the server's
    /// operator vouches for, and the user's seed) authenticates; the same made by an account the
    /// operator does not know is refused as an authentication failure.
    @Test func aCredentialsFileAuthenticatesAndOneOfAnUnknownAccountDoesNot() async throws {
        let directory = scratch("creds")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let trust = try NATSOperator()
        let good = directory.appendingPathComponent("hostmeter.creds")
        let stranger = directory.appendingPathComponent("stranger.creds")
        try trust.credentials().write(to: good, atomically: true, encoding: .utf8)
        try trust.credentials(signedBy: try NKeyPair(role: .account)).write(to: stranger, atomically: true, encoding: .utf8)
        let server = try NATSServer(directory: directory.appendingPathComponent("server"), extraConfig: trust.serverConfig)
        try server.start()
        defer { server.kill9() }
        let client = try JetStreamClient(urls: server.url, credentialsFile: good.path)
        try client.addStream("USAGE", subjects: ["usage.>"])
        let outbox = try FilledOutbox(events: 3)
        let make = { (file: URL) in
            NATSSink(
                settings: NATSSink.Settings(
                    servers: server.url, subject: Self.subject, hostID: "host-1", credentialsFile: file.path,
                    connectTimeoutSeconds: 1, ackTimeoutSeconds: 5))
        }
        try await expectRefusedThenDelivered(
            outbox.events, refused: make(stranger), right: make(good), what: "credentials of an unknown account")
        #expect(try client.messages("USAGE").compactMap(\.messageID) == outbox.eventIDs)
    }

    /// A server killed with SIGKILL and started again on the same store: the batch sent while
    /// it is down fails and is retried; after it is back every event is stored once.
    @Test func aServerKilledAndRestartedLosesAndDuplicatesNothing() async throws {
        let (server, _) = try serverWithStream("restart")
        defer { server.kill9() }
        let outbox = try FilledOutbox(events: 60)
        let sink = sink(server.url, ackTimeout: 1)
        defer { Task { await sink.shutdown() } }
        #expect(await sink.send(Array(outbox.events[0..<20])) == .delivered)
        server.kill9()
        guard case .retryable = await sink.send(Array(outbox.events[20..<40])) else {
            Issue.record("a batch sent to a dead server was not retried")
            return
        }
        try server.start()
        // The client reconnects by itself; until it has, sends are retried.
        var outcome = ShipOutcome.retryable(reason: .connect, detail: "", retryAfter: nil)
        let deadline = Date().addingTimeInterval(20)
        while outcome != .delivered, Date() < deadline {
            outcome = await sink.send(Array(outbox.events[10..<60]))
            if outcome != .delivered { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(outcome == .delivered)
        let client = try JetStreamClient(urls: server.url)
        let stored = try client.messages("USAGE").compactMap(\.messageID)
        #expect(stored.count == 60)
        #expect(Set(stored) == Set(outbox.eventIDs))
    }

    @Test func theShipperDeadLettersOnlyTheEventTheStreamRefuses() async throws {
        let outbox = try FilledOutbox(events: 30)
        let largest = outbox.events.map(\.payload.count).max()!
        // The stream's limit counts the headers too (the message id and two more: about 120 bytes).
        let (server, client) = try serverWithStream("shipper", maxMessageSize: Int32(largest + 300))
        defer { server.kill9() }
        // One more event, of another instance, too large for the stream.
        var big = outbox.events[17]
        big.eventID = "big-1"
        big.instanceID = "vm-big"
        big.payload = Data(#"{"user_id":"u-1","pad":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: largest + 300) + Data(#""}"#.utf8)
        try outbox.database.commit(MeteringCommit(events: [big]))
        let victim = big.eventID
        let service = ShipperService(
            database: outbox.database, sink: sink(server.url),
            settings: ShipperSettings(
                batchMaxEvents: 10, retry: RetryPolicy(baseSeconds: 0.05, capSeconds: 0.2), failureThreshold: 100,
                openSeconds: 0.5, longestWaitSeconds: 0.05, drainSeconds: 0),
            logger: ShipperIntegrationTests.quietLogger)
        let task = Task { try await service.run() }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, try outbox.database.stats().pendingEvents > 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        _ = try? await task.value
        let dead = try outbox.database.deadLetters()
        #expect(dead.map(\.event.eventID) == [victim])
        #expect(dead.first?.reason.contains("broker_rejected") == true)
        let stored = try client.messages("USAGE").compactMap(\.messageID)
        #expect(Set(stored) == Set(outbox.eventIDs))
        #expect(stored.count == 30)
    }
}

/// The test's NKeys encoding against vectors from the `nkeys` package of PyPI (NATS's own Python
/// implementation): the seed and public key of seeds 0x00…0x1f and 0xff…0xff.
@Suite struct NKeyPairTests {
    @Test func encodingMatchesTheReference() throws {
        let counting = try NKeyPair(seed: Data(0..<32))
        #expect(counting.seed == "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y")
        #expect(counting.publicKey == "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK")
        let ones = try NKeyPair(seed: Data(repeating: 0xFF, count: 32))
        #expect(ones.seed == "SUAP777777777777777777777777777777777777777777777777775UUA")
        #expect(ones.publicKey == "UB3KCWJAISTOJ5IREZN4U45GATMQWBJJ2HPWAK7DBIM2SJLWMDI7LRYD")
    }
}

@Suite struct NATSSubjectTemplateTests {
    func event(instance: String, userID: String? = "u 1", orgID: String? = "o.1") -> OutboxEvent {
        OutboxEvent(
            eventID: "e-1", eventType: "resource_usage", instanceID: instance, periodStart: 0, periodEnd: 30,
            payload: Data("{}".utf8), userID: userID, orgID: orgID)
    }

    @Test func placeholdersBecomeOneTokenEach() throws {
        let template = try NATSSubjectTemplate("hm.{host_id}.{event_type}.{org_id}.{user_id}.vm-{instance_id}")
        #expect(
            template.subject(for: event(instance: "a.b*c>d"), hostID: "h%1")
                == "hm.h%251.resource_usage.o%2E1.u%201.vm-a%2Eb%2Ac%3Ed")
        #expect(template.subject(for: event(instance: "vm-7", userID: nil, orgID: ""), hostID: "h") == "hm.h.resource_usage._._.vm-vm-7")
        // Multi-byte text is escaped byte by byte.
        #expect(NATSSubjectTemplate.token("é") == "%C3%A9")
        #expect(NATSSubjectTemplate.token(nil) == "_")
        #expect(NATSSubjectTemplate.token("") == "_")
    }

    @Test(arguments: [
        ("", "empty"), ("usage..x", "empty token"), ("usage.", "empty token"), (".usage", "empty token"),
        ("usage.*", "\"*\" is not allowed"), ("usage.>", "\">\" is not allowed"), ("usage x", "\" \" is not allowed"),
        ("usage.{vm}", "unknown placeholder {vm}"), ("usage.{org_id", "without its `}`"),
        (String(repeating: "a", count: 256), "longer than 255"),
    ])
    func invalidTemplatesAreRefusedSayingWhy(template: String, reason: String) {
        #expect {
            try NATSSubjectTemplate(template)
        } throws: { error in
            (error as? NATSSubjectTemplate.Invalid)?.reason.contains(reason) == true
        }
    }
}
