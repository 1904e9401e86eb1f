import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// A listen address that is not `host:port`.
public struct ListenAddressError: Error, Sendable, CustomStringConvertible {
    public var address: String
    public var description: String { "api.listen \"\(address)\" must be host:port with a port from 0 to 65535 ([v6]:port for IPv6)" }
}

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
        (host, port) = try Self.parse(listen)
        self.dependencies = dependencies
        self.boundPort = boundPort
    }

    /// `127.0.0.1:9780`, `[::1]:9780`, `localhost:9780`.
    public static func parse(_ listen: String) throws(ListenAddressError) -> (host: String, port: Int) {
        var host: Substring
        let portText: Substring
        if listen.hasPrefix("[") {
            guard let close = listen.firstIndex(of: "]"), listen[listen.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError(address: listen)
            }
            host = listen[listen.index(after: listen.startIndex)..<close]
            portText = listen[listen.index(close, offsetBy: 2)...]
        } else {
            guard let colon = listen.lastIndex(of: ":") else { throw ListenAddressError(address: listen) }
            host = listen[..<colon]
            portText = listen[listen.index(after: colon)...]
            if host.contains(":") { throw ListenAddressError(address: listen) }
        }
        host = host.isEmpty ? "0.0.0.0" : host
        guard let port = Int(portText), (0...65535).contains(port) else { throw ListenAddressError(address: listen) }
        return (String(host), port)
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
