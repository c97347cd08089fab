import NIOConcurrencyHelpers

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public var description: String { "operation exceeded its deadline" }
}

/// Runs `operation` but gives up after `duration`. Seen in the PostgreSQL-restart fault test: a query caught on a
/// connection at the moment the server went away never completed nor failed, and held its job forever. With a deadline
/// the caller moves on and the job's lease runs out, so the rescuer returns it. The operation runs in its own task,
/// and is cancelled on timeout, so that even an await that ignores cancellation cannot hold the caller.
public func withDeadline<T: Sendable>(_ duration: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
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
                work.cancel()
                continuation.resume(throwing: DeadlineExceeded())
            }
        }
        timer.withLockedValue { $0 = sleeper }
        if settled.withLockedValue({ $0 }) { sleeper.cancel() }
    }
}
