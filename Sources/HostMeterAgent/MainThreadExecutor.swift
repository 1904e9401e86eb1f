@_spi(ExperimentalCustomExecutors) import _Concurrency
#if canImport(Glibc)
import Glibc
#endif

/// The main actor's executor for a process that runs its own main loop: the main thread runs the
/// main actor's jobs, in order, and sleeps in the kernel when there are none.
///
/// Swift's own main executor on Linux is libdispatch's main queue: `dispatch_main()` ends the
/// main thread and the queue is then drained by a thread of libdispatch's worker pool, whose first
/// worker arms libdispatch's one-second pool monitor for the life of the process (see
/// `ProcessExecutors`). This one touches nothing of libdispatch.
final class MainThreadExecutor: MainExecutor, @unchecked Sendable {
    // Guarded by `mutex`; `@unchecked Sendable` rests on that.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [UnownedJob] = []
    private var stopped = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Runs the main actor's jobs on the calling thread (the main thread) until `stop()`.
    func run() throws {
        try runUntil { false }
    }

    /// Runs jobs until `done` holds after a round of jobs, or until `stop()`.
    func runUntil(_ done: () -> Bool) throws {
        pthread_mutex_lock(mutex)
        while !stopped {
            if jobs.isEmpty {
                pthread_cond_wait(condition, mutex)
                continue
            }
            let ready = jobs
            jobs.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(mutex)
            for job in ready { job.runSynchronously(on: asUnownedSerialExecutor()) }
            if done() { return }
            pthread_mutex_lock(mutex)
        }
        stopped = false
        pthread_mutex_unlock(mutex)
    }

    /// Ends `run()` after the jobs under way.
    func stop() {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}
