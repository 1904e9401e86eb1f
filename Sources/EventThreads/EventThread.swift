#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A thread of its own that runs jobs and timers, and sleeps in the kernel until one is due.
///
/// Two jobs in the agent. As a `TaskExecutor` it runs one long-lived service (the sampler) apart
/// from Swift's shared cooperative pool, whose threads the API's handlers can hold. And its
/// `sleep(for:)` is a timer that costs one wake-up when it is due and none before: Swift's
/// `Task.sleep` on Linux is a libdispatch timer, and while any such timer is pending, libdispatch's
/// manager thread wakes every second to re-arm it (measured with strace: one `Task.sleep` of a
/// day is 86,400 wake-ups). An idle agent sleeps only here (`EventThread.timers` for the shipper,
/// the notifier and the watchdog; the sampler's own thread for its ticks).
///
/// Jobs run one at a time, in order, on the thread; due timers resume their sleepers (whose tasks
/// go back to their own executors). The thread waits on a condition variable on
/// `CLOCK_MONOTONIC` until the earliest timer, so wall-clock steps do not move sleeps. It ends
/// after `finish()`, once nothing is left for it.
public final class EventThread: TaskExecutor, @unchecked Sendable {
    /// The shared timer thread for sleeps of tasks on the cooperative pool.
    public static let timers = EventThread(name: "hm-timers")

    private struct Timer {
        var id: UInt64
        var deadline: UInt64
        var wake: Wake
    }

    // Guarded by `mutex`; `@unchecked Sendable` rests on that.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [UnownedJob] = []
    private var timers: [Timer] = []
    private var nextTimerID: UInt64 = 0
    /// Set by `unpark()`, consumed by the next `park`.
    private var unparked = false
    /// The thread itself, set before `init` returns.
    private var thread = pthread_t()
    /// `finish()` was called: the thread ends once it has no job and no timer left.
    private var finishing = false
    /// The thread has ended: jobs go to the global executor.
    private var finished = false

    /// Starts the thread; `name` shows in `/proc/PID/task/*/comm` (15 bytes at most).
    public init(name: String) {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        let context = Unmanaged.passRetained(Box(thread: self, name: String(name.utf8.prefix(15)) ?? "hm-thread"))
        let started = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            EventThread.nameCurrentThread(box.name)
            box.thread.loop()
            return nil
        }, context.toOpaque())
        precondition(started == 0, "cannot start thread \(name): error \(started)")
        pthread_detach(thread)
    }

    private final class Box {
        let thread: EventThread
        let name: String
        init(thread: EventThread, name: String) {
            self.thread = thread
            self.name = name
        }
    }

    /// Names the calling thread (`pthread_setname_np` is not visible to Swift without _GNU_SOURCE):
    /// what `/proc/PID/task/TID/comm` shows, so a thread's wake-ups can be told apart.
    static func nameCurrentThread(_ name: String) {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = name.withCString { write(descriptor, $0, strlen($0)) }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let accepted = locked {
            guard !finished else { return false }
            jobs.append(job)
            pthread_cond_signal(condition)
            return true
        }
        // A task that still prefers a finished thread runs on.
        if !accepted { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Lets the thread end once its owner is done: when no job and no timer is left. A job that
    /// comes later runs on the caller's thread, on the global executor.
    public func finish() {
        locked {
            finishing = true
            pthread_cond_signal(condition)
        }
    }

    /// Whether the caller runs on this thread (a job of a task that prefers this executor).
    public var isCurrent: Bool { pthread_equal(pthread_self(), thread) != 0 }

    /// Like `Task.sleep(for:)`, cancellable the same way, but with no wake-up until it is due.
    ///
    /// On this thread (the service that owns it) the calling job parks the thread: a timed wait on
    /// its condition variable that `unpark()` and cancellation end early. Suspending instead would
    /// cost a hop: Swift resumes a continuation of a nonisolated task on the global pool first and
    /// only then on the preferred executor, and every use of the pool keeps libdispatch's monitor
    /// ticking every second. Elsewhere it is a timer of this thread, resumed by it when due.
    public func sleep(for duration: Duration) async throws {
        guard !isCurrent else {
            await withTaskCancellationHandler {
                park(until: Self.deadline(after: duration))
            } onCancel: {
                unpark()
            }
            try Task.checkCancellation()
            return
        }
        try await timerSleep(for: duration)
    }

    /// Ends the current or next `park` of this thread (a wake-up that must not be lost: one that
    /// comes while the owner is busy ends its next sleep at once).
    public func unpark() {
        locked {
            unparked = true
            pthread_cond_signal(condition)
        }
    }

    /// Blocks the calling job, which must run on this thread, until `deadline` (monotonic
    /// nanoseconds) or an `unpark()`. Jobs enqueued meanwhile wait: only the thread's owner parks.
    private func park(until deadline: UInt64) {
        precondition(isCurrent, "park is for the thread's own jobs")
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while !unparked, Self.monotonicNanos() < deadline {
            pthread_cond_timedwait(condition, mutex, &until)
        }
        unparked = false
    }

    static func deadline(after duration: Duration) -> UInt64 {
        let (sum, overflow) = monotonicNanos().addingReportingOverflow(UInt64(nanoseconds(duration)))
        return overflow ? .max : sum
    }

    /// `duration` in nanoseconds, for a wait: a negative duration is 0 and one too long for
    /// `Int64` is `Int64.max` (about 292 years), never a wrapped value.
    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (total, tooLong) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return tooLong ? .max : max(0, total)
    }

    /// A timer of this thread for a task running elsewhere: resumed by this thread when due.
    private func timerSleep(for duration: Duration) async throws {
        let deadline = Self.deadline(after: duration)
        let wake = Wake()
        let id = locked {
            defer { nextTimerID += 1 }
            return nextTimerID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard wake.arm(continuation) else { return }
                locked {
                    timers.append(Timer(id: id, deadline: deadline, wake: wake))
                    pthread_cond_signal(condition)
                }
            }
        } onCancel: {
            locked { timers.removeAll { $0.id == id } }
            wake.fire(CancellationError())
        }
    }

    /// Timers pending now (for tests: a cancelled sleep leaves none behind).
    public var pendingTimers: Int { locked { timers.count } }

    private func loop() {
        pthread_mutex_lock(mutex)
        while true {
            let now = Self.monotonicNanos()
            var due: [Wake] = []
            timers.removeAll { timer in
                guard timer.deadline <= now else { return false }
                due.append(timer.wake)
                return true
            }
            if jobs.isEmpty, due.isEmpty {
                if finishing, timers.isEmpty {
                    finished = true
                    pthread_mutex_unlock(mutex)
                    return
                }
                if let earliest = timers.map(\.deadline).min() {
                    var until = timespec(
                        tv_sec: Int(earliest / 1_000_000_000), tv_nsec: Int(earliest % 1_000_000_000))
                    pthread_cond_timedwait(condition, mutex, &until)
                } else {
                    pthread_cond_wait(condition, mutex)
                }
                continue
            }
            let ready = jobs
            jobs.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(mutex)
            for wake in due { wake.fire(nil) }
            for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
            pthread_mutex_lock(mutex)
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    static func monotonicNanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
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
