import AgentAPI
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// A tokens file with one admin token, in a scratch directory of its own.
struct AdminTokensFile {
    let directory: URL
    let token: String
    var path: String { directory.appendingPathComponent("tokens.yaml").path }

    init(token: String = "admin-\(UUID().uuidString)") throws {
        self.token = token
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "\"\(TokenStore.digest(of: token))\": admin\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    var authorization: (String, String) { ("Authorization", "Bearer \(token)") }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// The tests that load the API heavily. Every suite of the package runs in one process, sharing
/// Swift's cooperative pool and NIO's event loops, and these two would disturb each other's
/// timings: they run one after the other.
/// Run on their own by scripts/test.sh (`--filter APILoadTests`, after the rest of the suite):
/// they load both cores on purpose, and they time what happens under that load.
@Suite(.serialized) struct APILoadTests {}
extension APILoadTests {
    /// Slow and idle clients cannot take the API away: one peer holding idle connections beyond its
    /// limit, and one trickling a body a byte at a time, leave /health answering at once, and the
    /// trickled request is cut at the request deadline.
    ///
    /// Before the fix the API served 256 connections and kept each for a 60 s idle timeout that every
    /// trickled byte renewed: 256 idle sockets from one address made /health wait in the backlog, and
    /// a trickled body was never cut.
    @Suite struct SlowClientTests {
        /// The defaults: `api.max_connections_per_peer` 32, `api.request_timeout_seconds` 10.
        static let perPeerLimit = 32
        static let requestTimeout = 10.0

        @Test func idleAndTrickledConnectionsFromOnePeerLeaveHealthReachable() async throws {
            let tokens = try AdminTokensFile()
            defer { tokens.remove() }
            let agent = try await LiveAgent.start(extraYAML: "  tokens_file: \(tokens.path)")
            var idle: [LoopbackSocket] = []
            defer { for socket in idle { socket.close() } }
            do {
                // More idle connections from 127.0.0.1 than the per-peer limit, and more than the
                // 256 the API serves at once. Each connect waits at most 0.5 s (one the server does
                // not accept waits in the backlog, or is not answered at all).
                let started = Date()
                for _ in 0..<300 where Date().timeIntervalSince(started) < 30 {
                    if let socket = await LoopbackSocket(port: agent.port, timeout: 0.5) { idle.append(socket) }
                }
                #expect(idle.count >= 256, "only \(idle.count) of 300 idle connections connected")

                // A request whose body trickles in a byte at a time, from the same peer.
                let trickled = try #require(await LoopbackSocket(port: agent.port, timeout: 2), "the trickler could not connect")
                let trickleStarted = Date()
                #expect(await trickled.send(
                    "PUT /thresholds HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(tokens.token)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"))

                // A fresh client still gets /health at once.
                let healthStarted = Date()
                var healthStatus: Int?
                do {
                    var request = HTTPClientRequest(url: agent.base + "/health")
                    request.headers.add(name: "Connection", value: "close")
                    // With tokens, /health needs an admin or metrics token.
                    request.headers.add(name: "Authorization", value: "Bearer \(tokens.token)")
                    // Generous for a loaded machine; on main it never answered while the attack held.
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(4))
                    healthStatus = Int(response.status.code)
                    _ = try await response.body.collect(upTo: 1 << 20)
                } catch {
                    Issue.record("GET /health failed under the attack: \(error)")
                }
                let healthSeconds = Date().timeIntervalSince(healthStarted)
                #expect(healthStatus == 200)
                #expect(healthSeconds < 4, "GET /health took \(healthSeconds) s")

                // Trickle one byte every 250 ms until the server answers or closes (bounded: 20 s).
                var answer = ""
                var closedAfter: Double?
                trickle: while Date().timeIntervalSince(trickleStarted) < Self.requestTimeout + 10 {
                    switch await trickled.receive(timeout: 0.25) {
                    case .data(let text):
                        answer += text
                        if let rest = await trickled.receiveUntilClosed(timeout: 2) { answer += rest }
                        closedAfter = Date().timeIntervalSince(trickleStarted)
                        break trickle
                    case .closed:
                        closedAfter = Date().timeIntervalSince(trickleStarted)
                        break trickle
                    case .nothing:
                        await trickled.send(" ")
                    }
                }
                let cutAfter = try #require(closedAfter, "the trickled request was still open after \(Self.requestTimeout + 10) s")
                print("SlowClientTests: \(idle.count) idle connections; GET /health in \(healthSeconds) s; trickled request cut after \(cutAfter) s")
                #expect(cutAfter > Self.requestTimeout - 0.5 && cutAfter < Self.requestTimeout + 6,
                        "the trickled request was cut after \(cutAfter) s, not at the \(Self.requestTimeout) s deadline")
                #expect(answer.hasPrefix("HTTP/1.1 408"), "answer: \(answer.prefix(300))")
                #expect(answer.contains("\"status\":408"), "the 408 has the API's JSON error body: \(answer.prefix(300))")

                // The peer never held more than its limit: the connections beyond it were closed.
                var stillOpen = 0
                for socket in idle where await socket.receive(timeout: 0) == .nothing { stillOpen += 1 }
                #expect(stillOpen <= Self.perPeerLimit, "\(stillOpen) idle connections from one peer are still open")

                // Both kinds of closing are counted.
                let metrics = try await agent.get("/metrics", headers: [tokens.authorization])
                let peerLimit = Self.value(of: "hostmeter_api_connections_closed_total{reason=\"peer_limit\"}", in: metrics.body)
                let timeouts = Self.value(of: "hostmeter_api_connections_closed_total{reason=\"request_timeout\"}", in: metrics.body)
                #expect((peerLimit ?? 0) >= Double(idle.count - Self.perPeerLimit), "peer_limit: \(String(describing: peerLimit))")
                #expect((timeouts ?? 0) >= 1, "request_timeout: \(String(describing: timeouts))")
            } catch {
                await agent.stop()
                throw error
            }
            await agent.stop()
        }

        /// The value of the sample line `series` in a Prometheus exposition.
        static func value(of series: String, in exposition: String) -> Double? {
            for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }
    }
}
