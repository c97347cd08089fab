import Foundation
import HummingbirdBcrypt
import NIOCore
import NIOPosix

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
public final class PasswordHasher: Sendable {
    public static let shared = PasswordHasher()

    /// The nice value of the hashing threads (0 is the default of every other thread; 19 the lowest priority).
    static let niceness: Int32 = 10

    private let pool: NIOThreadPool

    init(threads: Int = System.coreCount) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
    }

    public func hash(_ password: String, cost: UInt8) async throws -> String {
        try await onHashingThread { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await onHashingThread { Bcrypt.verify(password, hash: hash) }
    }

    /// Runs `body` on a hashing thread, at the hashing priority.
    func onHashingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        try await pool.runIfActive {
            Self.lowerPriority()
            return body()
        }
    }

    /// Lowers the calling thread's priority: on Linux the nice value belongs to each thread, and `who` 0 is the
    /// calling one. Cheap beside a hash, and idempotent, so it is simply done before each one.
    static func lowerPriority() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }

    /// The nice value of the calling thread.
    static func currentNiceness() -> Int32 {
        #if os(Linux)
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
        return 0
        #endif
    }
}
