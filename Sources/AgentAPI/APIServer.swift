import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The local API server: the router on `api.listen`, as a service of the agent's group.
///
/// Every connection goes through a `ConnectionGuard` (per-peer and total limits, the request
/// deadline) and, with `api.tls`, through TLS first.
public struct APIServer: Service {
    public let host: String
    public let port: Int
    let dependencies: APIDependencies
    public let limits: APILimits
    let tls: APITLS?
    /// The port actually bound (the chosen one when `port` is 0), once listening.
    public let boundPort: BoundPort

    public final class BoundPort: Sendable {
        private struct State {
            var port: Int?
            var waiters: [UInt64: CheckedContinuation<Int?, Never>] = [:]
            var nextWaiter: UInt64 = 0
        }

        private let state = Mutex(State())
        public init() {}

        public var port: Int? { state.withLock { $0.port } }

        func set(_ port: Int) {
            let waiters = state.withLock { state in
                state.port = port
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume(returning: port) }
        }

        /// Waits until the server listens; nil if the waiting task is cancelled first (the server
        /// could not bind and the agent is shutting down, say).
        public func wait() async -> Int? {
            let id = state.withLock { state in
                defer { state.nextWaiter += 1 }
                return state.nextWaiter
            }
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Int?? in
                        if let port = state.port { return .some(port) }
                        if Task.isCancelled { return .some(nil) }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: nil)
            }
        }
    }

    public init(
        listen: String, dependencies: APIDependencies, limits: APILimits = APILimits(), tls: APITLS? = nil,
        boundPort: BoundPort = BoundPort()
    ) throws(ListenAddressError) {
        (host, port) = try ListenAddress.parse(listen)
        self.dependencies = dependencies
        self.limits = limits
        self.tls = tls
        self.boundPort = boundPort
    }

    /// Whether `host` is reachable from this machine only.
    public var isLoopback: Bool { ListenAddress.isLoopback(host) }

    /// Serves the router until a graceful shutdown. Hummingbird's `Application.run` is not used:
    /// it adds a service that refreshes the `Date` header every second, which would wake the
    /// agent every second (`HTTPDateHeader`). The responder does what the application's does: a
    /// context per request, the router's answer (an error no middleware turned into a response
    /// becomes a 500), the `Date` header, one write of head and body.
    public func run() async throws {
        let responder = APIRouter.build(dependencies).buildResponder()
        let boundPort = self.boundPort
        let logger = dependencies.logger
        let tlsMode = tls.map { $0.requiresClientCertificate ? "mutual" : "on" } ?? "off"
        let dates = HTTPDateHeader()
        let server = try serverBuilder().buildServer(
            configuration: ServerConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                // The guard keeps `maxConnections`; evicted connections close asynchronously, so
                // the accept loop's own bound leaves room for those still closing.
                availableConnectionsDelegate: MaximumAvailableConnections(2 * limits.maxConnections)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger,
            responder: { request, writer, channel in
                let context = APIRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
                var response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch {
                    logger.debug("unhandled error from the router", metadata: ["error": "\(error)"])
                    response = Response(status: .internalServerError)
                }
                response.headers[.date] = dates.now
                try await writer.write(response: response.head, body: response.body)
            },
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("API listening", metadata: ["api.port": "\(port)", "api.tls": "\(tlsMode)"])
                boundPort.set(port)
            })
        try await server.run()
    }

    /// The HTTP/1 server with a `ConnectionGuard` in every connection's pipeline, under TLS when
    /// configured: what `run` serves.
    func serverBuilder() throws -> HTTPServerBuilder {
        let table = ConnectionTable<any Channel>(limits: limits)
        let closings = ConnectionClosings(registry: dependencies.metrics.registry, logger: dependencies.logger)
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(table: table, closings: closings)],
            // The guard's deadline ends idle and slow connections first; this is Hummingbird's own
            // bound for the same, kept no shorter.
            idleTimeout: .nanoseconds(ConnectionGuard.nanoseconds(limits.requestTimeout)))
        guard let tls else { return .http1(configuration: http1) }
        return try .tls(.http1(configuration: http1), tlsConfiguration: tls.configuration)
    }
}
