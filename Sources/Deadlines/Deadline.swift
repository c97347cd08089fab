import NIOConcurrencyHelpers

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "operation exceeded its deadline" }
}

/// Runs `operation` but gives up after `duration`: the caller gets `DeadlineExceeded`, `onTimeout` runs (to close what
/// the operation holds, such as its database connection), and the operation's task is cancelled.
///
/// The operation runs in a task of its own, so that even an await that ignores cancellation cannot hold the caller.
/// PostgresNIO has such awaits: a query written to a connection that has just closed is never answered nor failed, so
/// the ROLLBACK that `withTransaction` sends after a lost connection waits forever (reproduced by SIGKILLing the
/// server under load: almost every transaction in flight hung). Such a task is abandoned; the caller moves on.
public func withDeadline<T: Sendable>(
    _ duration: Duration,
    onTimeout: (@Sendable () -> Void)? = nil,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let settled = NIOLockedValueBox(false)
    // The timer is cancelled as soon as the work settles: otherwise every call would leave a sleeping task (and a
    // dispatch timer) behind for the whole duration, thousands of them under load.
    let timer = NIOLockedValueBox<Task<Void, Never>?>(nil)
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            if settled.withLockedValue({ done in
                defer { done = true }
                return !done
            }) {
                timer.withLockedValue { $0?.cancel() }
                continuation.resume(with: result)
            }
        }
        let sleeper = Task {
            do { try await Task.sleep(for: duration) } catch { return }
            if settled.withLockedValue({ done in
                defer { done = true }
                return !done
            }) {
                onTimeout?()
                work.cancel()
                continuation.resume(throwing: DeadlineExceeded())
            }
        }
        timer.withLockedValue { $0 = sleeper }
        if settled.withLockedValue({ $0 }) { sleeper.cancel() }
    }
}
