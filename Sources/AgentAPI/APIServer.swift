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
        private let value = Mutex<Int?>(nil)
        private let waiters = Mutex<[CheckedContinuation<Int, Never>]>([])
        public init() {}

        public var port: Int? { value.withLock { $0 } }

        func set(_ port: Int) {
            value.withLock { $0 = port }
            for waiter in waiters.withLock({ list in defer { list = [] }; return list }) {
                waiter.resume(returning: port)
            }
        }

        /// Waits until the server listens.
        public func wait() async -> Int {
            await withCheckedContinuation { continuation in
                let ready = value.withLock { port -> Int? in
                    if let port { return port }
                    waiters.withLock { $0.append(continuation) }
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
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
