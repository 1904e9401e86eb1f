@_spi(ExperimentalCustomExecutors) @_spi(ExperimentalScheduling) import _Concurrency
import EventThreads
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Swift concurrency's executors for the agent's process: the main actor on the main thread
/// (`MainThreadExecutor`), and every other task on SwiftNIO's event loops, the threads that
/// already serve the API and the HTTP sinks.
///
/// Why not Swift's defaults: on Linux the default executor is libdispatch's worker pool, and the
/// first worker thread of that pool arms libdispatch's pool monitor
/// (`_dispatch_workq_monitor_pools`), a one-second timer on its manager thread that runs for the
/// life of the process whatever the program does: 3,600 wake-ups an hour, and a seventh of the
/// agent's CPU at rest (measured with perf on the static release build). NIO's loops sleep in
/// `epoll_wait` until there is work or a scheduled task is due, so an idle agent wakes only for
/// its own timers. `Task.sleep` becomes a scheduled task of a loop, not a libdispatch timer.
///
/// The hooks are Swift 6.3's custom executors (`ExecutorFactory`, still SPI in 6.3), installed by
/// `runMain` before any task exists, as the runtime requires.
public enum ProcessExecutors {
    struct Factory: ExecutorFactory {
        static let main = MainThreadExecutor()
        static let loops = EventLoopTaskExecutor(group: .singleton)
        static var mainExecutor: any MainExecutor { main }
        static var defaultExecutor: any TaskExecutor { loops }
    }

    /// Installs the executors, runs `body` as the main actor's task and exits with status 0 when
    /// it returns (`body` exits by itself with any other status). Call it first thing in `main`.
    public static func runMain(_ body: @escaping @MainActor @Sendable () async -> Void) -> Never {
        _createExecutors(factory: Factory.self)
        Task { @MainActor in
            await body()
            exit(0)
        }
        do {
            try Factory.main.run()
        } catch {
            fatalError("the main loop ended: \(error)")
        }
        exit(0)
    }
}

/// A task executor over an event loop group: a job runs on the calling thread's loop when it is
/// one of the group's (no thread switch), otherwise on the next loop; a delayed job is a
/// scheduled task of that loop (a timer of its `epoll_wait`, nothing periodic).
final class EventLoopTaskExecutor: TaskExecutor, SchedulingExecutor, @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup

    init(group: MultiThreadedEventLoopGroup) {
        self.group = group
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        group.any().execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    func enqueue<C: Clock>(_ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C) {
        let job = UnownedJob(job)
        // Every clock of this process (ContinuousClock, SuspendingClock) measures in `Duration`.
        let nanoseconds = (delay as? Duration).map(EventThread.nanoseconds) ?? 0
        group.any().scheduleTask(in: .nanoseconds(nanoseconds)) {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
