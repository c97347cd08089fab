import Foundation

/// Runs blocking work (a subprocess waited for, a pipe read to its end) on a thread of its own. Swift's cooperative
/// pool has one thread per core, two on the CI machine: a test that blocks one of them for a minute halves every other
/// test's progress in this process, the in-process services and fakes included.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
