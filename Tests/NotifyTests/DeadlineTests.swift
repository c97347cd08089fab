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
