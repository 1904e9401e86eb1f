import ServiceLifecycle

/// Runs `base` with `executor` as its task's executor preference: its code and the actors it
/// calls run there, not on the shared cooperative pool (see `DedicatedExecutor`).
struct ServiceOnExecutor<Base: Service>: Service {
    let base: Base
    let executor: DedicatedExecutor

    func run() async throws {
        try await withTaskExecutorPreference(executor) {
            try await base.run()
        }
    }
}
