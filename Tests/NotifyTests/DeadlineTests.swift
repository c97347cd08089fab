import Deadlines
import NIOConcurrencyHelpers
import Testing

@Suite("Deadlines")
struct DeadlineTests {
    /// An await that ignores cancellation, as PostgresNIO's on a connection that has just closed: it never returns
    /// until `release` is called.
    final class Stuck: Sendable {
        private let waiter = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        private let entered = NIOLockedValueBox(false)

        func wait() async {
            await withCheckedContinuation { continuation in
                waiter.withLockedValue { $0 = continuation }
                entered.withLockedValue { $0 = true }
            }
        }

        var hasEntered: Bool { entered.withLockedValue { $0 } }

        func release() { waiter.withLockedValue { $0 }?.resume() }
    }

    @Test("the operation's answer comes back; a stuck operation gives DeadlineExceeded and runs onTimeout once")
    func deadline() async throws {
        #expect(try await withDeadline(.seconds(30)) { 42 } == 42)
        await #expect(throws: CancellationError.self) { try await withDeadline(.seconds(30)) { throw CancellationError() } }

        let stuck = Stuck()
        let timeouts = NIOLockedValueBox(0)
        let countTimeout: @Sendable () -> Void = { timeouts.withLockedValue { $0 += 1 } }
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(200), onTimeout: countTimeout) {
                await stuck.wait()
                return 1
            }
        }
        #expect(timeouts.withLockedValue { $0 } == 1)
        stuck.release()  // the abandoned task ends; its late answer goes nowhere
    }

    @Test("the deadline clock: an entry fires once and never early, a cancelled one never; a settled call leaves no entry")
    func deadlineClock() async throws {
        let timer = DeadlineTimer()
        let start = ContinuousClock.now
        let fired = NIOLockedValueBox<[String: [Duration]]>([:])
        let record: @Sendable (String) -> Void = { name in fired.withLockedValue { $0[name, default: []].append(ContinuousClock.now - start) } }
        _ = timer.schedule(after: .milliseconds(120)) { record("first") }
        let cancelled = timer.schedule(after: .milliseconds(100)) { record("cancelled") }
        _ = timer.schedule(after: .milliseconds(300)) { record("last") }
        timer.cancel(cancelled)
        #expect(timer.pending == 2)
        let deadline = ContinuousClock.now + .seconds(30)
        while fired.withLockedValue({ $0["last"] }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let seen = fired.withLockedValue { $0 }
        #expect(seen.keys.sorted() == ["first", "last"])
        #expect(seen["first"]?.count == 1)
        #expect(seen["first"].map { $0[0] >= .milliseconds(120) } == true)
        #expect(seen["last"].map { $0.count == 1 && $0[0] >= .milliseconds(300) } == true)
        #expect(timer.pending == 0)

        // Every call below settles long before its deadline: each removes its entry from the clock it was put on.
        for _ in 0..<1000 { _ = try await withDeadline(.seconds(600), clock: timer) { 1 } }
        #expect(timer.pending == 0)
        // One that does not settle stays there until it times out.
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(100), clock: timer) {
                try await Task.sleep(for: .seconds(600))
                return 1
            }
        }
        #expect(timer.pending == 0)
    }

    @Test("a cancelled caller stops waiting at once, even for an operation that ignores cancellation", .timeLimit(.minutes(1)))
    func callerCancellation() async throws {
        let stuck = Stuck()
        let timeouts = NIOLockedValueBox(0)
        let caller = Task {
            try await withDeadline(.seconds(3600), onTimeout: { timeouts.withLockedValue { $0 += 1 } }) {
                await stuck.wait()
                return 1
            }
        }
        // Wait until the operation is inside its stuck await, then cancel the caller.
        _ = try await eventually("the operation waiting") { stuck.hasEntered ? true : nil }
        caller.cancel()
        let outcome = await caller.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(timeouts.withLockedValue { $0 } == 1, "what the operation holds is released")
        stuck.release()

        // Cancelled before it began: nothing runs.
        let ran = NIOLockedValueBox(false)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await withDeadline(.seconds(3600)) { ran.withLockedValue { $0 = true } }
        }
        let earlyOutcome = await early.result
        #expect(throws: CancellationError.self) { try earlyOutcome.get() }
        #expect(!ran.withLockedValue { $0 })
    }
}
