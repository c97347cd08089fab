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
public func withDeadline<T: Sendable>(
    _ duration: Duration,
    onTimeout: (@Sendable () -> Void)? = nil,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let call = DeadlineCall<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            guard call.start(continuation) else { return }
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                call.settle(with: result)
            }
            // The timer is cancelled as soon as the work settles: otherwise every call would leave a sleeping task
            // (and a dispatch timer) behind for the whole duration, thousands of them under load.
            let timer = Task {
                do { try await Task.sleep(for: duration) } catch { return }
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
        var timer: Task<Void, Never>?
        /// Settled before the continuation existed (the caller was cancelled before it began).
        var early: Result<T, any Error>?
        var settled = false
    }

    private let state = NIOLockedValueBox(State())

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

    func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let settled = state.withLockedValue { state in
            state.work = work
            state.timer = timer
            return state.settled
        }
        if settled {
            work.cancel()
            timer.cancel()
        }
    }

    /// True for the first outcome, which the caller gets; later ones are dropped.
    @discardableResult
    func settle(with result: Result<T, any Error>) -> Bool {
        let (first, continuation, work, timer) = state.withLockedValue {
            state -> (Bool, CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?) in
            guard !state.settled else { return (false, nil, nil, nil) }
            state.settled = true
            if state.continuation == nil { state.early = result }
            defer { state.continuation = nil }
            return (true, state.continuation, state.work, state.timer)
        }
        guard first else { return false }
        work?.cancel()
        timer?.cancel()
        continuation?.resume(with: result)
        return true
    }
}
