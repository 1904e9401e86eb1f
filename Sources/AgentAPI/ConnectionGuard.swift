import Hummingbird
import NIOCore
import NIOHTTPTypes

/// Guards one API connection from its channel pipeline, where Hummingbird's HTTP/1 channel adds
/// it (`additionalChannelHandlers`: after HTTP decoding, before the request is handled).
///
/// - When the connection opens, `ConnectionTable` admits it against the per-peer and total limits,
///   closing a connection that waited longer on its client to make room, or closes it.
/// - The client has `requestTimeout` to send a whole request, counted from the accept or from the
///   previous response's head, so a trickled head or body, a stalled TLS handshake, an idle
///   kept-alive connection and a client that does not read its answer all end there. The clock
///   stops only while a received request is being answered (the server's time, not the client's).
///   A request whose head arrived and that nothing answered yet gets a 408; the others are closed
///   silently (an idle connection has no request to answer).
///
/// All state is the channel's own and touched on its event loop only.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let table: ConnectionTable<any Channel>
    private let closings: ConnectionClosings
    private let timeout: TimeAmount

    private var opened = false
    private var id: UInt64?
    private var peer = PeerAddress(nil)
    private var requestHeads = 0
    private var requestEnds = 0
    private var responseHeads = 0
    /// Since when the connection waits on its client; nil while a request is being answered.
    private var waitingSince: NIODeadline?
    private var deadline: Scheduled<Void>?

    init(table: ConnectionTable<any Channel>, closings: ConnectionClosings) {
        self.table = table
        self.closings = closings
        timeout = .nanoseconds(Self.nanoseconds(table.limits.requestTimeout))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { open(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    func channelActive(context: ChannelHandlerContext) {
        open(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: requestHeads += 1
        case .body: break
        case .end: requestEnds += 1
        }
        update(context: context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = unwrapOutboundIn(data) { responseHeads += 1 }
        update(context: context)
        context.write(data, promise: promise)
    }

    // MARK: Admission

    private func open(context: ChannelHandlerContext) {
        guard !opened else { return }
        opened = true
        peer = PeerAddress(context.channel.remoteAddress)
        let now = NIODeadline.now()
        switch table.admit(context.channel, from: peer, now: now) {
        case .refused(let reason):
            closings.record(reason, peer: peer, now: now)
            context.close(promise: nil)
        case .admitted(let id, let evicted):
            self.id = id
            if let evicted {
                closings.record(evicted.reason, peer: evicted.peer, now: now)
                evicted.connection.close(promise: nil)
            }
            startWaiting(context: context, since: now)
        }
    }

    private func release() {
        deadline?.cancel()
        deadline = nil
        if let id { table.remove(id) }
        id = nil
    }

    // MARK: The request deadline

    /// Starts or stops the clock when the turn passes between the client and the server: the
    /// server's turn is while a whole request waits for its response to begin.
    private func update(context: ChannelHandlerContext) {
        guard let id else { return }
        let serverAnswering = requestEnds > responseHeads
        if serverAnswering, waitingSince != nil {
            waitingSince = nil
            deadline?.cancel()
            deadline = nil
            table.setWaiting(id, since: nil)
        } else if !serverAnswering, waitingSince == nil {
            startWaiting(context: context, since: .now())
        }
    }

    private func startWaiting(context: ChannelHandlerContext, since: NIODeadline) {
        waitingSince = since
        if let id { table.setWaiting(id, since: since) }
        deadline?.cancel()
        deadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: since + timeout) { [self] in
            self.deadline = nil
            self.timedOut(context: context)
        }
    }

    private func timedOut(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        closings.record(.requestTimeout, peer: peer)
        // A request has begun and nothing answers it: say why it ends. An idle connection, or one
        // whose answer is already under way, is closed without a word.
        if requestHeads > requestEnds, requestHeads > responseHeads {
            let seconds = Double(timeout.nanoseconds) / 1e9
            let body = ByteBuffer(
                string: #"{"error":{"status":408,"message":"the request did not arrive whole within \#(seconds) s"}}"#)
            let head = HTTPResponse(
                status: .requestTimeout,
                headerFields: [
                    .contentType: "application/json", .contentLength: "\(body.readableBytes)", .connection: "close",
                ])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }
}
