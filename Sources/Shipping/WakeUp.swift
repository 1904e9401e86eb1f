import EventThreads
import Synchronization

/// A sleep that another task can end early: a delivery loop waits on it between rounds, and a
/// source with news (a commit that stored events, a committed threshold event) wakes it. Sleeps
/// on the monotonic clock, so a wall-clock step cannot stretch a wait.
///
/// A loop that runs on a thread of its own (`thread`, the shipper's) parks that thread, so a
/// sleep and its wake-up touch nothing else; elsewhere it sleeps on a timer of the shared timer
/// thread. Neither is a libdispatch timer (see `EventThread`).
final class WakeUp: Sendable {
    private let state = Mutex<(sleeper: Task<Void, Never>?, pending: Bool)>((nil, false))
    /// The thread the sleeping loop owns, if any.
    let thread: EventThread?

    init(thread: EventThread? = nil) {
        self.thread = thread
    }

    /// A sleep "until woken" still needs an end: a day, after which the loop just looks again.
    static var longestSleepSeconds: Double { 86_400 }

    /// Ends the current sleep; with none under way, the next one returns at once.
    func wake() {
        thread?.unpark()
        state.withLock { state in
            if let sleeper = state.sleeper {
                sleeper.cancel()
            } else {
                state.pending = true
            }
        }
    }

    /// Sleeps `seconds` (`.infinity`: until woken), less when woken or when the calling task is
    /// cancelled.
    func sleep(seconds: Double) async {
        let milliseconds = Int64((min(seconds, Self.longestSleepSeconds) * 1000).rounded(.up))
        if let thread, thread.isCurrent {
            try? await thread.sleep(for: .milliseconds(milliseconds))
            return
        }
        // A timer of the shared timer thread: a pending `Task.sleep` would wake the process every second.
        let sleeper = Task { _ = try? await EventThread.timers.sleep(for: .milliseconds(milliseconds)) }
        let woken = state.withLock { state in
            if state.pending {
                state.pending = false
                return true
            }
            state.sleeper = sleeper
            return false
        }
        if woken {
            sleeper.cancel()
            return
        }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        state.withLock { $0.sleeper = nil }
    }
}
