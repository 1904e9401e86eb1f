import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// The local API server: the router on `api.listen`, as a service of the agent's group.
public struct APIServer: Service {
    public let host: String
    public let port: Int
    let dependencies: APIDependencies
    /// The port actually bound (the chosen one when `port` is 0), once listening.
    public let boundPort: BoundPort

    /// Connections served at once; more wait in the backlog.
    public static let maxConnections = 256

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

    public init(listen: String, dependencies: APIDependencies, boundPort: BoundPort = BoundPort()) throws(ListenAddressError) {
        (host, port) = try ListenAddress.parse(listen)
        self.dependencies = dependencies
        self.boundPort = boundPort
    }

    public func run() async throws {
        let router = APIRouter.build(dependencies)
        let boundPort = self.boundPort
        let logger = dependencies.logger
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(Self.maxConnections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("API listening", metadata: ["api.port": "\(port)"])
                boundPort.set(port)
            },
            logger: logger)
        try await app.run()
    }
}
