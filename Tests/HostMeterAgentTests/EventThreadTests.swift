import EventThreads
import Foundation
import Synchronization
import Testing

/// `EventThread`: the sampler's and the shipper's own threads and the shared timer thread. A
/// service on one runs there, parks it between rounds with no wake-up before its time, is woken
/// early by `unpark()` or cancellation, and the thread ends with its service.
@Suite struct EventThreadTests {
    /// The kernel's name of the calling thread.
    static func threadName() -> String {
        (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// Voluntary context switches (the thread went to sleep) so far of this process's thread named
    /// `name`, or nil without one. Preemptions on a loaded machine are not the thread's doing.
    static func switches(ofThreadNamed name: String) -> Int? {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for task in tasks {
            guard (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == name,
                let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8)
            else { continue }
            return status.split(separator: "\n").filter { $0.hasPrefix("voluntary_ctxt_switches") }
                .compactMap { Int($0.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") }
                .reduce(0, +)
        }
        return nil
    }

    @Test func aServiceRunsOnItsThreadAndASleepWakesItOnce() async throws {
        let thread = EventThread(name: "hm-test-park")
        defer { thread.finish() }
        try await withTaskExecutorPreference(thread) {
            #expect(Self.threadName() == "hm-test-park")
            let before = try #require(Self.switches(ofThreadNamed: "hm-test-park"))
            let started = ContinuousClock.now
            try await thread.sleep(for: .milliseconds(1500))
            let slept = ContinuousClock.now - started
            let after = try #require(Self.switches(ofThreadNamed: "hm-test-park"))
            #expect(Self.threadName() == "hm-test-park", "resumed elsewhere")
            #expect(slept >= .milliseconds(1500) && slept < .seconds(30), "\(slept)")
            // One wake-up for the whole sleep (a libdispatch timer would be one per second, and a
            // continuation would pass through the pool); a little slack for preemption.
            #expect(after - before <= 3, "\(after - before) context switches during one sleep")
        }
    }

    @Test func unparkEndsASleepAndIsNotLostWhenItComesFirst() async throws {
        let thread = EventThread(name: "hm-test-unpark")
        defer { thread.finish() }
        try await withTaskExecutorPreference(thread) {
            // Before the sleep: the next sleep returns at once.
            thread.unpark()
            var started = ContinuousClock.now
            try await thread.sleep(for: .seconds(120))
            #expect(ContinuousClock.now - started < .seconds(60))
            // During the sleep, from a thread of its own (a pool task could start late under load).
            Thread.detachNewThread {
                usleep(300_000)
                thread.unpark()
            }
            started = ContinuousClock.now
            try await thread.sleep(for: .seconds(120))
            #expect(ContinuousClock.now - started < .seconds(60))
        }
    }

    @Test func cancellationEndsASleepOnTheThreadAndOnATimer() async throws {
        let thread = EventThread(name: "hm-test-cancel")
        defer { thread.finish() }
        for onThread in [true, false] {
            let sleeper = Task {
                let started = ContinuousClock.now
                if onThread {
                    try? await withTaskExecutorPreference(thread) { try await thread.sleep(for: .seconds(120)) }
                } else {
                    try? await thread.sleep(for: .seconds(120))
                }
                return ContinuousClock.now - started
            }
            try await Task.sleep(for: .milliseconds(200))
            sleeper.cancel()
            let slept = await sleeper.value
            // Cancellation comes from the pool, which a loaded test run can hold up for seconds.
            #expect(slept < .seconds(60), "on the thread: \(onThread), slept \(slept)")
        }
        // A cancelled timer leaves nothing behind for the thread to wake for.
        #expect(thread.pendingTimers == 0)
    }

    @Test func aTimerResumesATaskOfThePool() async throws {
        let started = ContinuousClock.now
        try await EventThread.timers.sleep(for: .milliseconds(250))
        let slept = ContinuousClock.now - started
        // Resumed on the shared pool: under a loaded parallel test run that can take seconds.
        #expect(slept >= .milliseconds(250) && slept < .seconds(60), "\(slept)")
    }

    @Test func theThreadEndsWithItsServiceAndLaterJobsStillRun() async throws {
        let thread = EventThread(name: "hm-test-finish")
        let value = await withTaskExecutorPreference(thread) { 42 }
        #expect(value == 42)
        thread.finish()
        let deadline = ContinuousClock.now + .seconds(5)
        while Self.switches(ofThreadNamed: "hm-test-finish") != nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(Self.switches(ofThreadNamed: "hm-test-finish") == nil, "the thread did not end")
        // A task that still prefers it runs on the pool.
        #expect(await withTaskExecutorPreference(thread) { 7 } == 7)
    }

    /// Waits convert durations saturating, never wrapping: a wrapped value would turn a very long
    /// sleep into a negative (immediate) one, and a negative duration into a very long one.
    @Test func durationsConvertToNanosecondsSaturating() {
        #expect(EventThread.nanoseconds(.milliseconds(1500)) == 1_500_000_000)
        #expect(EventThread.nanoseconds(.nanoseconds(1)) == 1)
        #expect(EventThread.nanoseconds(.zero) == 0)
        #expect(EventThread.nanoseconds(.milliseconds(-1)) == 0)
        #expect(EventThread.nanoseconds(.seconds(-3)) == 0)
        #expect(EventThread.nanoseconds(.seconds(Int64.max)) == .max)
        #expect(EventThread.nanoseconds(.seconds(9_223_372_036) + .milliseconds(999)) == .max)
        #expect(EventThread.nanoseconds(.seconds(9_223_372_035)) == 9_223_372_035_000_000_000)
    }
}
