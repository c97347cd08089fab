import NIOConcurrencyHelpers

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "operation exceeded its deadline" }
}

/// Runs `operation` but gives up after `duration`: the caller gets `DeadlineExceeded`, `onTimeout` runs (to close what
/// the operation holds, such as its database connection), and the operation's task is cancelled. A caller that is
/// cancelled gives up the same way at once, with `CancellationError`.
///
/// The operation runs in a task of its own, so that even an await that ignores cancellation cannot hold the caller.
/// PostgresNIO has such awaits: a query written to a connection that has just closed is never answered nor failed, so
/// the ROLLBACK that `withTransaction` sends after a lost connection waits forever (reproduced by SIGKILLing the
/// server under load: almost every transaction in flight hung). Such a task is abandoned; the caller moves on. (A
/// task group cannot do this: it waits for every child, the stuck one included.)
///
/// `clock` is the process's shared one unless a test needs one of its own.
public func withDeadline<T: Sendable>(
    _ duration: Duration,
    clock: DeadlineTimer = .shared,
    onTimeout: (@Sendable () -> Void)? = nil,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let call = DeadlineCall<T>(clock: clock)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            guard call.start(continuation) else { return }
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                call.settle(with: result)
            }
            // One shared clock (`DeadlineTimer`) instead of a sleeping task and a dispatch timer per call; the entry
            // is removed as soon as the work settles.
            let timer = clock.schedule(after: duration) {
                if call.settle(with: .failure(DeadlineExceeded())) { onTimeout?() }
            }
            call.attach(work: work, timer: timer)
        }
    } onCancel: {
        if call.settle(with: .failure(CancellationError())) { onTimeout?() }
    }
}

/// One `withDeadline` call: whichever of the work, the timer and the caller's cancellation comes first settles it,
/// once; the others are cancelled.
final class DeadlineCall<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: DeadlineTimer.Entry?
        /// Settled before the continuation existed (the caller was cancelled before it began).
        var early: Result<T, any Error>?
        var settled = false
    }

    private let state = NIOLockedValueBox(State())
    private let clock: DeadlineTimer

    init(clock: DeadlineTimer) { self.clock = clock }

    /// False when the call was settled before it began (the caller was already cancelled): nothing is started.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early: Result<T, any Error>? = state.withLockedValue { state in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    func attach(work: Task<Void, Never>, timer: DeadlineTimer.Entry) {
        let settled = state.withLockedValue { state in
            state.work = work
            state.timer = timer
            return state.settled
        }
        if settled {
            work.cancel()
            clock.cancel(timer)
        }
    }

    /// True for the first outcome, which the caller gets; later ones are dropped.
    @discardableResult
    func settle(with result: Result<T, any Error>) -> Bool {
        let (first, continuation, work, timer) = state.withLockedValue {
            state -> (Bool, CheckedContinuation<T, any Error>?, Task<Void, Never>?, DeadlineTimer.Entry?) in
            guard !state.settled else { return (false, nil, nil, nil) }
            state.settled = true
            if state.continuation == nil { state.early = result }
            defer { state.continuation = nil }
            return (true, state.continuation, state.work, state.timer)
        }
        guard first else { return false }
        work?.cancel()
        if let timer { clock.cancel(timer) }
        continuation?.resume(with: result)
        return true
    }
}

/// The one clock of every `withDeadline` in the process: a deadline is an entry in a wheel of 50 ms slots, added and
/// removed under a lock, and one task fires the entries whose slot has passed, waking every 50 ms while there are any
/// and not at all while there are none. A task and a dispatch timer per call (what this replaced) cost the worker about
/// a tenth of its CPU in the dispatch manager thread and the timer heap. A deadline fires never early and up to about
/// two slots late (its slot, rounded up, plus the runner's sleep).
public final class DeadlineTimer: Sendable {
    public static let shared = DeadlineTimer()
    static let tickMilliseconds: Int64 = 50

    public struct Entry: Sendable {
        let slot: Int64
        let id: UInt64
    }

    private struct State {
        var slots: [Int64: [UInt64: @Sendable () -> Void]] = [:]
        var count = 0
        var nextID: UInt64 = 0
        var idle: CheckedContinuation<Void, Never>?
        var started = false
    }

    private let state = NIOLockedValueBox(State())
    private let origin = ContinuousClock.now

    public init() {}

    /// Runs `fire` once `duration` has passed, unless `cancel` removed it before.
    public func schedule(after duration: Duration, _ fire: @escaping @Sendable () -> Void) -> Entry {
        let at = milliseconds(at: .now + duration, roundingUp: true)
        let due = (at + Self.tickMilliseconds - 1) / Self.tickMilliseconds  // rounded up: never early
        let (entry, idle, start) = state.withLockedValue { state -> (Entry, CheckedContinuation<Void, Never>?, Bool) in
            state.nextID &+= 1
            let entry = Entry(slot: due, id: state.nextID)
            state.slots[due, default: [:]][entry.id] = fire
            state.count += 1
            defer {
                state.idle = nil
                state.started = true
            }
            return (entry, state.idle, !state.started)
        }
        if start { Task.detached { await self.run() } }
        idle?.resume()
        return entry
    }

    public func cancel(_ entry: Entry) {
        state.withLockedValue { state in
            guard state.slots[entry.slot]?.removeValue(forKey: entry.id) != nil else { return }
            state.count -= 1
            if state.slots[entry.slot]?.isEmpty == true { state.slots[entry.slot] = nil }
        }
    }

    /// How many entries wait.
    public var pending: Int { state.withLockedValue { $0.count } }

    /// Whole milliseconds since `origin`, rounded down (or up, for a deadline, so it is never early).
    private func milliseconds(at instant: ContinuousClock.Instant, roundingUp: Bool = false) -> Int64 {
        let (seconds, attoseconds) = (instant - origin).components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let whole = seconds * 1000 + attoseconds / perMillisecond
        return roundingUp && attoseconds % perMillisecond != 0 ? whole + 1 : whole
    }

    private func run() async {
        while true {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let busy = state.withLockedValue { state in
                    if state.count == 0 { state.idle = continuation }
                    return state.count > 0
                }
                if busy { continuation.resume() }
            }
            try? await Task.sleep(for: .milliseconds(Self.tickMilliseconds))
            let now = milliseconds(at: .now) / Self.tickMilliseconds
            let due = state.withLockedValue { state -> [@Sendable () -> Void] in
                var due: [@Sendable () -> Void] = []
                for slot in state.slots.keys where slot <= now {
                    if let entries = state.slots.removeValue(forKey: slot) { due += entries.values }
                }
                state.count -= due.count
                return due
            }
            for fire in due { fire() }
        }
    }
}
