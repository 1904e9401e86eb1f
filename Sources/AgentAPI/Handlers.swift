import Foundation
import Hummingbird
import Metering
import NIOCore
import NIOPosix
import Outbox
import RuntimeState
import Synchronization
import UsageModel

/// The route handlers. They read the published snapshot and never /proc; the threshold and instance
/// routes write (through the rule book and the instance registry, which store what they accept).
struct Handlers: Sendable {
    let dependencies: APIDependencies
    /// /get's head up to its one per-request field, encoded once per sample.
    let getHead = GetHeadCache()

    // MARK: GET /get

    func get(_ request: Request, context: APIRequestContext) throws -> Response {
        var instanceID: String?
        var userID: String?
        var orgID: String?
        for (key, value) in request.uri.queryParameters {
            let text = String(value)
            switch key {
            case "instance_id": instanceID = text
            case "user_id": userID = text
            case "org_id": orgID = text
            default:
                throw APIError(.badRequest, "unknown query parameter \"\(key)\"; known: instance_id, user_id, org_id")
            }
        }
        let snapshot = dependencies.state.snapshot
        var instances = snapshot.instances
        var showHost = true
        // Ids are compared as bytes, never by Unicode canonical equivalence (String's ==).
        if case .user(let own)? = context.role {
            // A user sees their own instances and nothing of the host or of others.
            showHost = false
            if let userID, !userID.utf8.elementsEqual(own.utf8) {
                throw APIError(.notFound, "no instances of user \"\(userID)\"")
            }
            instances = instances.filter { $0.userID.utf8.elementsEqual(own.utf8) && !$0.isHost }
        }
        if let instanceID {
            instances = instances.filter { $0.instanceID.utf8.elementsEqual(instanceID.utf8) }
            if instances.isEmpty { throw APIError(.notFound, "no instance \"\(instanceID)\"") }
        }
        if let userID { instances = instances.filter { $0.userID.utf8.elementsEqual(userID.utf8) } }
        if let orgID { instances = instances.filter { $0.orgID.map { $0.utf8.elementsEqual(orgID.utf8) } ?? false } }

        let now = dependencies.now()
        var body: [UInt8] = []
        body.reserveCapacity(
            256 + (showHost ? snapshot.hostJSON?.count ?? 0 : 0) + instances.reduce(0) { $0 + $1.json.count + 1 }
                + snapshot.gpusJSON.count)
        let sampledAt = snapshot.lastSample.map { Double($0.wallNanos) / 1e9 }
        // Everything in the head but the sample's age is the same for every request until the next
        // sample: encoded once, then copied; the age is written here.
        let key = GetHeadCache.Key(
            hostID: snapshot.hostID, intervalSeconds: snapshot.intervalSeconds, sampleSeconds: snapshot.sampleSeconds,
            sampledAtNanos: snapshot.lastSample?.wallNanos)
        body += getHead.prefix(for: key) {
            var bytes = InstanceView.encode(
                Head(
                    agentVersion: AgentVersion.current, hostID: key.hostID, intervalSeconds: key.intervalSeconds,
                    sampleSeconds: key.sampleSeconds, sampledAt: sampledAt.map { ($0 * 1000).rounded() / 1000 }))
            bytes.removeLast()  // the closing brace: the rest of the object follows
            return bytes
        }
        body += Array(",\"sample_age_seconds\":".utf8)
        // A finite, non-negative Double's description is a JSON number ("0.25", "3.0", "1e-05").
        body += Array((sampledAt.map { "\((max(0, now - $0) * 1000).rounded() / 1000)" } ?? "null").utf8)
        body += Array(",\"host\":".utf8)
        body += showHost ? snapshot.hostJSON ?? Array("null".utf8) : Array("null".utf8)
        body += Array(",\"instances\":[".utf8)
        for (index, instance) in instances.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += instance.json
        }
        body += Array("],\"gpus\":".utf8)
        body += showHost ? snapshot.gpusJSON : Array("[]".utf8)
        body.append(UInt8(ascii: "}"))
        return APIRouter.json(bytes: body)
    }

    private struct Head: Encodable {
        var agentVersion: String
        var hostID: String
        var intervalSeconds: Int
        var sampleSeconds: Int
        var sampledAt: Double?

        enum CodingKeys: String, CodingKey {
            case agentVersion = "agent_version", hostID = "host_id", intervalSeconds = "interval_seconds"
            case sampleSeconds = "sample_seconds", sampledAt = "sampled_at"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(agentVersion, forKey: .agentVersion)
            try container.encode(hostID, forKey: .hostID)
            try container.encode(intervalSeconds, forKey: .intervalSeconds)
            try container.encode(sampleSeconds, forKey: .sampleSeconds)
            try container.encode(sampledAt, forKey: .sampledAt)
        }
    }

    // MARK: GET /health, /metrics

    func health(_ request: Request, context: APIRequestContext) throws -> Response {
        let health = currentHealth()
        return APIRouter.json(status: health.ok ? .ok : .serviceUnavailable, health)
    }

    func metrics(_ request: Request, context: APIRequestContext) throws -> Response {
        let bytes = dependencies.status.exposition(now: dependencies.now())
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private func currentHealth() -> AgentHealth {
        dependencies.status.health(now: dependencies.now())
    }

    // MARK: /thresholds

    struct ThresholdsBody: Encodable {
        var source: ThresholdRuleSource
        var updatedAt: Double?
        var rules: [ThresholdRule]

        enum CodingKeys: String, CodingKey { case source, updatedAt = "updated_at", rules }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(source, forKey: .source)
            try container.encode(updatedAt, forKey: .updatedAt)
            try container.encode(rules, forKey: .rules)
        }
    }

    private func thresholdsBody() -> ThresholdsBody {
        let book = dependencies.thresholds
        return ThresholdsBody(source: book.source, updatedAt: book.updatedAt, rules: book.effective)
    }

    func getThresholds(_ request: Request, context: APIRequestContext) throws -> Response {
        APIRouter.json(thresholdsBody())
    }

    func putThresholds(_ request: Request, context: APIRequestContext) async throws -> Response {
        let data = try await Self.readJSONBody(request)
        let rules: [ThresholdRule]
        do {
            rules = try ThresholdRulesRequest.decode(data)
        } catch {
            throw APIError(.badRequest, "invalid rules: \(error)")
        }
        do {
            let (thresholds, now) = (dependencies.thresholds, dependencies.now())
            try await Self.blocking { try thresholds.put(rules, now: now) }
        } catch let error as ThresholdRuleError {
            throw APIError(.badRequest, "invalid rules: \(error.within("rules"))")
        } catch {
            dependencies.logger.error("cannot store threshold rules", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, "cannot store the rules: \(error)")
        }
        dependencies.logger.notice(
            "threshold rules replaced over the API",
            metadata: ["rules.count": "\(rules.count)", "peer": "\(context.peer)"])
        return APIRouter.json(thresholdsBody())
    }

    func deleteThresholds(_ request: Request, context: APIRequestContext) async throws -> Response {
        do {
            let thresholds = dependencies.thresholds
            try await Self.blocking { try thresholds.deleteAPIRules() }
        } catch {
            throw APIError(.serviceUnavailable, "cannot delete the rules: \(error)")
        }
        dependencies.logger.notice("threshold rules set over the API deleted; the configuration's apply")
        return APIRouter.json(thresholdsBody())
    }

    // MARK: GET /outbox

    func outbox(_ request: Request, context: APIRequestContext) throws -> Response {
        guard let report = dependencies.status.outboxReport() else {
            throw APIError(.serviceUnavailable, "outbox not read yet")
        }
        return APIRouter.json(report)
    }

    // MARK: GET /identity

    /// The public half of the agent's signing key, which a billing team records per host to check
    /// the signatures of its usage commitments.
    func identity(_ request: Request, context: APIRequestContext) throws -> Response {
        guard let identity = dependencies.identity else {
            throw APIError(.notFound, "this agent has no identity key loaded")
        }
        return APIRouter.json(bytes: identity.document(hostID: dependencies.state.snapshot.hostID, keyFile: nil))
    }

    // MARK: Bodies

    /// Runs a write that blocks (a SQLite transaction and its fsync) on NIO's thread pool for
    /// blocking work, not on the event loop that runs the handler: the loop keeps serving its other
    /// connections (and, as the process's default executor, other tasks) meanwhile.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// The body as bytes: over 64 KiB is 413, a declared type other than JSON is 415.
    static func readJSONBody(_ request: Request) async throws -> Data {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "the body must be application/json, not \(type)")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > APIRouter.maxBodyBytes {
            throw APIError(.contentTooLarge, "the request body is larger than \(APIRouter.maxBodyBytes) bytes")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: APIRouter.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "the request body is larger than \(APIRouter.maxBodyBytes) bytes")
        }
        return Data(buffer.readableBytesView)
    }
}

/// `/get`'s head without `sample_age_seconds`, kept for the sample it was encoded for: the
/// requests between two samples copy it instead of running the JSON encoder each.
final class GetHeadCache: Sendable {
    struct Key: Equatable, Sendable {
        var hostID: String
        var intervalSeconds: Int
        var sampleSeconds: Int
        var sampledAtNanos: Int64?
    }

    private let cached = Mutex<(key: Key, bytes: [UInt8])?>(nil)

    /// The bytes for `key`, from `encode` when the key changed since the last call.
    func prefix(for key: Key, encode: () -> [UInt8]) -> [UInt8] {
        if let hit = cached.withLock({ $0?.key == key ? $0?.bytes : nil }) { return hit }
        let bytes = encode()
        cached.withLock { $0 = (key, bytes) }
        return bytes
    }
}
