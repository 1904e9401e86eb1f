import Synchronization

/// The sink the shipper uses, replaceable while it runs.
final class SinkSlot: Sendable {
    private let state: Mutex<(current: any Sink, retired: [any Sink])>

    init(_ sink: any Sink) {
        state = Mutex((sink, []))
    }

    var current: any Sink { state.withLock { $0.current } }

    func replace(with sink: any Sink) {
        state.withLock {
            $0.retired.append($0.current)
            $0.current = sink
        }
    }

    /// Shuts down sinks replaced since the last call; called between batches, so none is in use.
    func shutDownRetired() async {
        let retired = state.withLock { state -> [any Sink] in
            defer { state.retired = [] }
            return state.retired
        }
        for sink in retired { await sink.shutdown() }
    }
}
