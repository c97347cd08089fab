import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NotifyHTTP
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Hashes and checks passwords (bcrypt) on threads of its own, at a lower CPU priority than everything else.
///
/// One bcrypt call keeps a core busy for tens of milliseconds. It ran on the shared `NIOThreadPool` (one thread per
/// core), where the Redis client's calls run too: with eight clients signing up, the user service's contact lookups
/// (the gateway and the workers ask for one per notification the directory cache does not hold) queued behind the
/// hashes, 24/s with a p99 of 210 ms. Here, at nice 10, they kept 4,100–4,600/s at a p99 of 6–8 ms, and hashing
/// still uses every idle cycle (`deploy/local/lookup_bench.py`).
///
/// It is a service: a process lists it in its service group (before the HTTP server, which then stops first) and its
/// threads end with the process, after the hashes in progress.
public final class PasswordHasher: Service {

    /// The nice value of the user service's hashing threads (0 is the default of every other thread; 19 the lowest
    /// priority).
    public static let background: Int32 = 10

    /// The nice value of this hasher's threads: `background` where hashes compete with a hot path (the user service's
    /// lookups), 0 for the admin's logins. An operator logs in when the platform is busiest, and at nice 10 on a
    /// saturated machine one hash waited more than 10 s for its CPU (a debug build under the test suite's load).
    let niceness: Int32

    private let pool: NIOThreadPool
    /// Hashes running or waiting; beyond `maxPending` a call is refused at once (`Busy`) instead of queueing, so
    /// a flood of logins or sign-ups cannot build an unbounded backlog of bcrypt work.
    private let pending = NIOLockedValueBox(0)
    let maxPending: Int

    /// Too many hashes are already running or waiting: try again shortly (503 with Retry-After).
    public struct Busy: Error, CustomStringConvertible {
        public var description: String { "password hashing is at capacity" }
    }

    public init(threads: Int = System.coreCount, maxPending: Int? = nil, niceness: Int32 = PasswordHasher.background) {
        self.niceness = niceness
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
        self.maxPending = maxPending ?? Int(ProcessInfo.processInfo.environment["NOTIFY_PASSWORD_HASH_QUEUE"] ?? "") ?? 32
    }

    public func hash(_ password: String, cost: UInt8) async throws -> String {
        try await onHashingThread { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await onHashingThread { Bcrypt.verify(password, hash: hash) }
    }

    /// Runs `body` on a hashing thread, at the hashing priority.
    func onHashingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        let admitted = pending.withLockedValue { pending in
            guard pending < maxPending else { return false }
            pending += 1
            return true
        }
        guard admitted else { throw Busy() }
        defer { pending.withLockedValue { $0 -= 1 } }
        let niceness = niceness
        return try await pool.runIfActive {
            Self.lowerPriority(to: niceness)
            return body()
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try? await pool.shutdownGracefully()
    }

    /// Lowers the calling thread's priority: on Linux the nice value belongs to each thread, and `who` 0 is the
    /// calling one. Cheap beside a hash, and idempotent, so it is simply done before each one.
    static func lowerPriority(to niceness: Int32) {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }
}

extension APIError {
    /// Password hashing is at capacity (`PasswordHasher.Busy`): nothing was checked; try again in a second.
    public static let hashingBusy = APIError(
        .serviceUnavailable,
        code: .busy,
        message: "Too many password checks are in progress; try again shortly",
        headers: [.retryAfter: "1"]
    )

    /// Too many login attempts for this account or from this address; nothing was checked.
    public static func loginThrottled(retryAfterSeconds: Int) -> APIError {
        APIError(
            .tooManyRequests,
            code: .rateLimited,
            message: "Too many login attempts; try again later",
            headers: [.retryAfter: String(max(1, retryAfterSeconds))]
        )
    }
}
