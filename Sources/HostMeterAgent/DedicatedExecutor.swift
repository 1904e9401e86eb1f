import Dispatch
import Synchronization

/// A thread of its own for one long-running service, outside Swift's shared cooperative pool.
///
/// The pool has one thread per core, and the API's request handlers run there; a burst of them
/// (a threshold write commits to SQLite and waits for the disk) can hold every thread, and a job
/// queued behind them waits its turn. The sampler runs here instead (`ServiceOnExecutor`), and
/// sleeps with `sleep(for:)`, whose wake-up is this executor's own timer: `Task.sleep` would wake
/// it on the cooperative pool, behind the handlers again. Jobs run one at a time, in order, on a
/// serial dispatch queue (libdispatch runs it on a thread apart from the cooperative pool's).
final class DedicatedExecutor: TaskExecutor {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    /// Like `Task.sleep(for:)`, cancellable the same way, but woken by this executor's timer: a
    /// task preferring this executor resumes here without passing through the cooperative pool.
    func sleep(for duration: Duration) async throws {
        let wake = Wake()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard wake.arm(continuation) else { return }
                let (seconds, attoseconds) = duration.components
                let nanoseconds = max(0, Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
                queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { wake.fire(nil) }
            }
        } onCancel: {
            wake.fire(CancellationError())
        }
    }

    /// One sleep's continuation, resumed once: by the timer or by cancellation, whichever is first
    /// (cancellation may come before the continuation exists).
    private final class Wake: Sendable {
        private enum State {
            case idle
            case armed(CheckedContinuation<Void, any Error>)
            case fired((any Error)?)
        }

        private let state = Mutex(State.idle)

        /// False when it fired already (cancelled): the continuation was resumed here.
        func arm(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
            let fired = state.withLock { state -> (any Error)?? in
                guard case .fired(let error) = state else {
                    state = .armed(continuation)
                    return nil
                }
                return .some(error)
            }
            guard let fired else { return true }
            if let error = fired { continuation.resume(throwing: error) } else { continuation.resume() }
            return false
        }

        func fire(_ error: (any Error)?) {
            let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                switch state {
                case .idle:
                    state = .fired(error)
                    return nil
                case .armed(let continuation):
                    state = .fired(error)
                    return continuation
                case .fired:
                    return nil
                }
            }
            if let error { continuation?.resume(throwing: error) } else { continuation?.resume() }
        }
    }
}
