#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The clocks a sample is stamped with; injectable so tests can step the wall clock.
public struct HostClock: Sendable {
    public var now: @Sendable () -> SampleTime

    public init(now: @escaping @Sendable () -> SampleTime) { self.now = now }

    /// CLOCK_REALTIME and CLOCK_BOOTTIME of this machine.
    public static let system = HostClock {
        SampleTime(wallNanos: Int64(bitPattern: nanoseconds(CLOCK_REALTIME)), bootNanos: nanoseconds(CLOCK_BOOTTIME))
    }

    /// CLOCK_MONOTONIC, for timing work.
    public static func monotonicNanos() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }

    /// CPU time of the calling thread, for benchmarks.
    public static func threadCPUNanos() -> UInt64 { nanoseconds(CLOCK_THREAD_CPUTIME_ID) }

    private static func nanoseconds(_ clock: clockid_t) -> UInt64 {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }
}
