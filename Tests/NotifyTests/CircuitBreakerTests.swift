import Breakers
import NIOConcurrencyHelpers
import Testing

/// A clock the test moves by hand.
final class ManualClock: BreakerClock {
    let current = NIOLockedValueBox<Duration>(.zero)
    func now() -> Duration { current.withLockedValue { $0 } }
    func advance(_ by: Duration) { current.withLockedValue { $0 += by } }
}

@Suite("Circuit breaker")
struct CircuitBreakerTests {
    func breaker(_ clock: ManualClock, consecutive: Int = 3) -> CircuitBreaker {
        CircuitBreaker(
            name: "test",
            configuration: .init(
                windowSize: 10,
                minimumCalls: 6,
                failureRatio: 0.5,
                consecutiveFailures: consecutive,
                baseOpen: .seconds(1),
                maximumOpen: .seconds(8)
            ),
            clock: clock
        )
    }

    @Test("consecutive failures open it, and an open breaker refuses calls until its time is up")
    func opensOnConsecutiveFailures() {
        let clock = ManualClock()
        let breaker = breaker(clock)
        for _ in 0..<2 {
            #expect(breaker.allow())
            breaker.record(success: false)
        }
        #expect(breaker.state == .closed)
        #expect(breaker.allow())
        breaker.record(success: false)
        #expect(breaker.state == .open)
        #expect(!breaker.allow())
        #expect(breaker.retryAfter == .seconds(1))
        clock.advance(.milliseconds(999))
        #expect(!breaker.allow())
    }

    @Test("a failure ratio over the sliding window opens it even without a run of failures")
    func opensOnFailureRatio() {
        let clock = ManualClock()
        let breaker = breaker(clock, consecutive: 100)
        for outcome in [true, false, true, false, true] {
            _ = breaker.allow()
            breaker.record(success: outcome)
        }
        #expect(breaker.state == .closed, "5 calls are fewer than the minimum of 6")
        _ = breaker.allow()
        breaker.record(success: false)
        #expect(breaker.state == .open, "3 failures in 6 calls reach the 50% ratio")
    }

    @Test("half-open lets exactly one probe through; its success closes the breaker")
    func probeSuccessCloses() {
        let clock = ManualClock()
        let breaker = breaker(clock)
        for _ in 0..<3 {
            _ = breaker.allow()
            breaker.record(success: false)
        }
        clock.advance(.seconds(1))
        #expect(breaker.state == .halfOpen)
        #expect(breaker.allow())
        #expect(!breaker.allow(), "a second caller waits while the probe is out")
        breaker.record(success: true)
        #expect(breaker.state == .closed)
        #expect(breaker.allow())
    }

    @Test("a failed probe reopens it for twice as long, up to the cap; a success resets the growth")
    func openTimeGrowsToCap() {
        let clock = ManualClock()
        let breaker = breaker(clock)
        for _ in 0..<3 {
            _ = breaker.allow()
            breaker.record(success: false)
        }
        var expected: [Duration] = []
        var seen: [Duration] = []
        for step in 0..<5 {
            let open = breaker.retryAfter
            seen.append(open)
            expected.append(min(.seconds(1 << step), .seconds(8)))
            clock.advance(open)
            #expect(breaker.allow())
            breaker.record(success: false)
        }
        #expect(seen == expected)
        clock.advance(breaker.retryAfter)
        #expect(breaker.allow())
        breaker.record(success: true)
        for _ in 0..<3 {
            _ = breaker.allow()
            breaker.record(success: false)
        }
        #expect(breaker.retryAfter == .seconds(1))
    }

    @Test("run() refuses at once while open and does not count errors the caller says are not failures")
    func runWrapsCalls() async throws {
        let clock = ManualClock()
        let breaker = breaker(clock)
        struct NotFound: Error {}
        for _ in 0..<5 {
            await #expect(throws: NotFound.self) { try await breaker.run({ throw NotFound() }, isFailure: { !($0 is NotFound) }) }
        }
        #expect(breaker.state == .closed)
        struct Down: Error {}
        for _ in 0..<3 { await #expect(throws: Down.self) { try await breaker.run { throw Down() } } }
        let calls = NIOLockedValueBox(0)
        await #expect(throws: BreakerOpenError.self) { try await breaker.run { calls.withLockedValue { $0 += 1 } } }
        #expect(calls.withLockedValue { $0 } == 0)
    }
}
