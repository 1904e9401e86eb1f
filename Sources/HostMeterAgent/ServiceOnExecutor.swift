import EventThreads
import ServiceLifecycle

/// Runs `base` with `executor` as its task's executor preference: its code and the actors it
/// calls run there, not on the shared cooperative pool (see `EventThread`). The thread is the
/// service's: it ends when the service returns.
struct ServiceOnExecutor<Base: Service>: Service {
    let base: Base
    let executor: EventThread

    func run() async throws {
        defer { executor.finish() }
        try await withTaskExecutorPreference(executor) {
            try await base.run()
        }
    }
}
