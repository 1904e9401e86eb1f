import Dispatch
import Foundation
import Metering
import Synchronization
import InputGuards
import RuntimeState

/// Reads and parses manifest files on a thread of its own, each within a deadline, so that no file
/// in `instances_dir` can hold up the sampler.
///
/// `YAMLGuard` refuses the YAML we know to be slow before Yams sees it; this is the backstop for
/// what we do not know. Yams cannot be interrupted, so a parse that runs past the deadline is given
/// up on: its file gets a problem (kept until the file changes), its thread is left to finish on
/// its own, and the files queued behind it go to a new thread. Those threads are counted: past
/// `maxAbandoned` still running, no file is parsed any more (each gets a problem saying why) rather
/// than a core being taken for every bad file.
final class ManifestReader: Sendable {
    typealias Load = @Sendable (String) -> Result<InstanceManifest, ManifestProblem>

    /// A file as it was when it was listed: a parse is for that version only.
    struct Request: Sendable, Hashable {
        var file: String
        var version: FileVersion
    }

    /// What identifies a version of a file without reading it: inode, size and modification time.
    struct FileVersion: Sendable, Hashable {
        var inode: UInt64
        var size: Int64
        var modifiedNanos: Int64
    }

    private struct State {
        var queue: [Request] = []
        var queueHead = 0
        var queued = Set<Request>()
        var running: (request: Request, since: ContinuousClock.Instant)?
        var finished: [Request: Result<InstanceManifest, ManifestProblem>] = [:]
        /// The current worker thread's number; a worker that is not current stops.
        var worker = 0
        var workerAlive = false
        /// Files whose parse passed the deadline and whose thread has not returned yet.
        var abandoned: [String] = []

        var isIdle: Bool { queueHead == queue.count && running == nil }

        mutating func dequeue() -> Request? {
            guard queueHead < queue.count else { return nil }
            let request = queue[queueHead]
            queueHead += 1
            queued.remove(request)
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
            }
            return request
        }
    }

    let deadline: Duration
    let maxAbandoned: Int
    private let load: Load
    private let state = Mutex(State())
    /// Signalled by a worker after each file, and when a worker stops.
    private let progress = DispatchSemaphore(value: 0)

    init(deadline: Duration, maxAbandoned: Int = 2, load: @escaping Load) {
        self.deadline = deadline
        self.maxAbandoned = maxAbandoned
        self.load = load
    }

    /// Queues files to be parsed; one already queued, running or finished at that version is not
    /// queued again.
    func submit(_ requests: [Request]) {
        guard !requests.isEmpty else { return }
        state.withLock { state in
            for request in requests
            where !state.queued.contains(request) && state.running?.request != request && state.finished[request] == nil {
                state.queue.append(request)
                state.queued.insert(request)
            }
            startWorker(&state)
        }
    }

    /// Waits until nothing is queued or running, or `wait` has passed, then hands over the results
    /// finished since the last call. A parse past its deadline ends as a problem for its file.
    func collect(waitingAtMost wait: Duration) -> [Request: Result<InstanceManifest, ManifestProblem>] {
        let clock = ContinuousClock()
        let end = clock.now + wait
        while true {
            let now = clock.now
            let wake: ContinuousClock.Instant? = state.withLock { state in
                expire(&state, now: now)
                guard !state.isIdle, now < end else { return nil }
                return min(end, (state.running?.since ?? now) + deadline)
            }
            guard let wake else { break }
            let nanoseconds = max(0, (wake - now) / .nanoseconds(1))
            _ = progress.wait(timeout: .now() + .nanoseconds(Int(min(nanoseconds, Double(Int32.max)))))
        }
        return state.withLock { state in
            let finished = state.finished
            state.finished = [:]
            return finished
        }
    }

    /// Gives up on a parse that has run past the deadline: its file gets a problem and the files
    /// queued behind it a new thread.
    private func expire(_ state: inout State, now: ContinuousClock.Instant) {
        guard let running = state.running, now - running.since > deadline else { return }
        state.finished[running.request] = .failure(
            ManifestProblem(
                file: running.request.file,
                message: "not read: parsing it took longer than \(Self.describe(deadline)); "
                    + "it is skipped until the file changes"))
        state.abandoned.append(running.request.file)
        state.running = nil
        state.worker += 1
        state.workerAlive = false
        startWorker(&state)
    }

    /// Starts a worker for the queue unless one runs; past `maxAbandoned` stuck parses, fails
    /// the queue instead.
    private func startWorker(_ state: inout State) {
        guard !state.workerAlive, !state.isIdle, state.running == nil else { return }
        guard state.abandoned.count < maxAbandoned else {
            let stuck = state.abandoned.joined(separator: ", ")
            while let request = state.dequeue() {
                state.finished[request] = .failure(
                    ManifestProblem(
                        file: request.file,
                        message: "not read: the parses of \(stuck) never finished, and no more are started; "
                            + "fix or remove those files and restart the agent"))
            }
            return
        }
        state.workerAlive = true
        let number = state.worker
        let thread = Thread { [self] in work(number) }
        thread.name = "hostmeter-manifests"
        thread.start()
    }

    /// A worker: parses queued files one by one until the queue is empty or it is no longer the
    /// current worker (its parse ran past the deadline).
    private func work(_ number: Int) {
        while true {
            let next: Request? = state.withLock { state in
                guard state.worker == number else { return nil }
                guard let request = state.dequeue() else {
                    state.workerAlive = false
                    return nil
                }
                state.running = (request, ContinuousClock.now)
                return request
            }
            guard let request = next else {
                progress.signal()
                return
            }
            let result = load(request.file)
            let current = state.withLock { state in
                guard state.worker == number else {
                    if let index = state.abandoned.firstIndex(of: request.file) { state.abandoned.remove(at: index) }
                    return false
                }
                state.running = nil
                state.finished[request] = result
                return true
            }
            progress.signal()
            guard current else { return }
        }
    }

    private static func describe(_ duration: Duration) -> String {
        let milliseconds = duration / .milliseconds(1)
        return milliseconds >= 1000 && milliseconds.truncatingRemainder(dividingBy: 1000) == 0
            ? "\(Int(milliseconds / 1000)) s" : "\(Int(milliseconds)) ms"
    }
}
