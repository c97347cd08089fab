import Breakers
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Telemetry

/// A read-through cache in Redis. Redis is an optimisation, never a dependency: when it fails the breaker opens,
/// lookups go straight to the source without waiting on Redis, and the breaker logs each change of state once.
///
/// A write that could not invalidate its keys (Redis slow, unreachable, or the breaker open) is never followed by a
/// stale read from this process: the keys are held as pending, reads of them go to the source, and `invalidationRetry`
/// (a service of the process) retries the invalidation until Redis takes it. Other replicas see the change within the cache lifetime at worst.
public struct RedisCache: Sendable {
    let redis: RedisClient
    let prefix: String
    let ttlSeconds: Int
    public let breaker: CircuitBreaker
    let pending: PendingInvalidations
    let logger: Logger

    public init(redis: RedisClient, prefix: String, ttlSeconds: Int, logger: Logger) {
        self.redis = redis
        self.prefix = prefix
        self.ttlSeconds = ttlSeconds
        self.logger = logger
        self.breaker = CircuitBreaker(name: "redis", configuration: .init(consecutiveFailures: 2, maximumOpen: .seconds(30)), logger: logger)
        self.pending = PendingInvalidations()
    }

    public func get(_ key: String) async -> String? {
        (try? await breaker.run { try await redis.get(prefix + key) }) ?? nil
    }

    public func set(_ key: String, _ value: String) async {
        _ = try? await breaker.run { try await redis.set(prefix + key, value, ttlSeconds: ttlSeconds) }
    }

    /// Read-through: the cached value if there is one, else `load()`'s, which is cached for next time (nil is not).
    /// A key whose invalidation is still pending is neither read from nor written to Redis.
    public func fetch<Value: Codable & Sendable>(_ key: String, as type: Value.Type, load: () async throws -> Value?) async throws -> Value? {
        try await fetchMany([key], as: type) { _ in try await load().map { [key: $0] } ?? [:] }[key]
    }

    /// `fetch` for many keys at once: one MGET for those not pending, one `load` for the rest, one SET (or one script,
    /// for several) that caches what was loaded. Keys `load` does not return are absent from the result (and not cached).
    public func fetchMany<Value: Codable & Sendable>(
        _ keys: [String],
        as type: Value.Type,
        load: ([String]) async throws -> [String: Value]
    ) async throws -> [String: Value] {
        guard let first = keys.first else { return [:] }
        let family = String(first.prefix { $0 != ":" })
        let readable = keys.filter { !pending.holds(delete: $0) }
        var found: [String: Value] = [:]
        if !readable.isEmpty, case .array(let values)? = try? await breaker.run({ try await redis.command(["MGET"] + readable.map { prefix + $0 }) })
        {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            for (key, value) in zip(readable, values) {
                if case .string(let text) = value, let decoded = try? decoder.decode(Value.self, from: Data(text.utf8)) { found[key] = decoded }
            }
        }
        for _ in 0..<found.count { Telemetry.cache(family, hit: true) }
        let missing = keys.filter { found[$0] == nil }
        for _ in 0..<missing.count { Telemetry.cache(family, hit: false) }
        guard !missing.isEmpty else { return found }
        let loaded = try await load(missing)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        var toCache: [(String, String)] = []
        for (key, value) in loaded {
            found[key] = value
            // A write that failed to invalidate while this read was loading: its value may be the old one.
            if !pending.holds(delete: key), let data = try? encoder.encode(value) {
                toCache.append((prefix + key, String(decoding: data, as: UTF8.self)))
            }
        }
        if toCache.count == 1 {
            _ = try? await breaker.run { try await redis.set(toCache[0].0, toCache[0].1, ttlSeconds: ttlSeconds) }
        } else if !toCache.isEmpty {
            _ = try? await breaker.run {
                try await redis.command(
                    ["EVAL", Self.setManyScript, String(toCache.count)] + toCache.map(\.0) + [String(ttlSeconds)] + toCache.map(\.1)
                )
            }
        }
        return found
    }

    /// SET each KEY to its value (ARGV[1 + i]) with the lifetime ARGV[1], in one round trip.
    static let setManyScript = """
        for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1]) end
        return #KEYS
        """

    public func invalidate(_ keys: [String]) async {
        guard !keys.isEmpty else { return }
        if (try? await breaker.run { try await redis.delete(keys.map { prefix + $0 }) }) != nil { return }
        hold(deletes: keys, bumps: [])
    }

    private func hold(deletes: [String], bumps: [String]) {
        logger.warning(
            "cache invalidation did not reach Redis: reads of these keys bypass the cache until a retry succeeds",
            metadata: ["keys": .string((deletes + bumps).joined(separator: ","))]
        )
        pending.add(deletes: deletes, bumps: bumps)
    }

    /// The service that retries invalidations that did not reach Redis: it belongs in the process's service group
    /// (it ends with it), and sleeps while nothing is pending.
    public var invalidationRetry: InvalidationRetry { InvalidationRetry(cache: self) }

    /// Retries while invalidations are pending, with a growing pause between tries; returns when none is left, or
    /// when cancelled.
    func retryPending() async {
        var pause = Duration.milliseconds(200)
        while true {
            do { try await Task.sleep(for: pause) } catch { return }
            let (deletes, bumps) = pending.snapshot()
            var doneDeletes: [String: Int] = [:]
            var doneBumps: [String: Int] = [:]
            if !deletes.isEmpty, (try? await breaker.run { try await redis.delete(deletes.keys.map { prefix + $0 }) }) != nil {
                doneDeletes = deletes
            }
            for (key, failure) in bumps where (try? await breaker.run { try await redis.command(["INCR", prefix + key]) }) != nil {
                doneBumps[key] = failure
            }
            if pending.remove(deletes: doneDeletes, bumps: doneBumps) {
                logger.info("pending cache invalidations reached Redis")
                return
            }
            pause = min(pause * 2, .seconds(5))
        }
    }
}

extension RedisCache {
    /// A counter that names the current generation of a family of keys: bumping it invalidates every key built on it
    /// (for lookups whose keys cannot be listed, like a template in every requested language). Nil when the current
    /// generation is not known (Redis failed, or a bump is pending): the family must not be read from the cache then.
    public func generation(_ key: String) async -> String? {
        guard !pending.holds(bump: key) else { return nil }
        // Not `try?`: it would flatten "no such key" (generation 0) into "Redis failed".
        let value: String?
        do { value = try await breaker.run { try await redis.get(prefix + key) } } catch { return nil }
        return value ?? "0"
    }

    public func bump(_ key: String) async {
        if (try? await breaker.run { try await redis.command(["INCR", prefix + key]) }) != nil { return }
        hold(deletes: [], bumps: [key])
    }
}

/// Retries the invalidations of one cache that did not reach Redis, as a service of the process's group.
public struct InvalidationRetry: Service {
    let cache: RedisCache

    public func run() async throws {
        for await _ in cache.pending.wakeups.cancelOnGracefulShutdown() {
            await cache.retryPending()
        }
    }
}

/// Invalidations that have not reached Redis yet. Each key carries the number of the last failed try that named it, so
/// a retry that read the set before a newer failure does not clear the newer one.
final class PendingInvalidations: Sendable {
    struct State {
        var deletes: [String: Int] = [:]
        var bumps: [String: Int] = [:]
        var failures = 0
        var retrying = false
    }

    let state = NIOLockedValueBox(State())
    /// One element each time keys become pending while no retry runs: the retry service then starts one.
    let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func holds(delete key: String) -> Bool { state.withLockedValue { $0.deletes[key] != nil } }
    func holds(bump key: String) -> Bool { state.withLockedValue { $0.bumps[key] != nil } }

    /// Records the keys, and wakes the retry service when no retry is running yet.
    func add(deletes: [String], bumps: [String]) {
        let start = state.withLockedValue { state in
            state.failures += 1
            for key in deletes { state.deletes[key] = state.failures }
            for key in bumps { state.bumps[key] = state.failures }
            defer { state.retrying = true }
            return !state.retrying
        }
        if start { wake.yield() }
    }

    func snapshot() -> (deletes: [String: Int], bumps: [String: Int]) {
        state.withLockedValue { ($0.deletes, $0.bumps) }
    }

    /// Forgets what reached Redis (unless a newer failure named it again); true when nothing is left (the retry
    /// task ends).
    func remove(deletes: [String: Int], bumps: [String: Int]) -> Bool {
        state.withLockedValue { state in
            for (key, failure) in deletes where state.deletes[key] == failure { state.deletes[key] = nil }
            for (key, failure) in bumps where state.bumps[key] == failure { state.bumps[key] = nil }
            if state.deletes.isEmpty && state.bumps.isEmpty { state.retrying = false }
            return !state.retrying
        }
    }
}
