import Breakers
import Foundation
import Logging
import NIOConcurrencyHelpers
import Telemetry

/// A read-through cache in Redis. Redis is an optimisation, never a dependency: when it fails the breaker opens,
/// lookups go straight to the source without waiting on Redis, and the breaker logs each change of state once.
public struct RedisCache: Sendable {
    let redis: RedisClient
    let prefix: String
    let ttlSeconds: Int
    public let breaker: CircuitBreaker

    public init(redis: RedisClient, prefix: String, ttlSeconds: Int, logger: Logger) {
        self.redis = redis
        self.prefix = prefix
        self.ttlSeconds = ttlSeconds
        self.breaker = CircuitBreaker(name: "redis", configuration: .init(consecutiveFailures: 2, maximumOpen: .seconds(30)), logger: logger)
    }

    public func get(_ key: String) async -> String? {
        (try? await breaker.run { try await redis.get(prefix + key) }) ?? nil
    }

    public func set(_ key: String, _ value: String) async {
        _ = try? await breaker.run { try await redis.set(prefix + key, value, ttlSeconds: ttlSeconds) }
    }

    /// Read-through: the cached value if there is one, else `load()`'s, which is cached for next time (nil is not).
    public func fetch<Value: Codable & Sendable>(_ key: String, as type: Value.Type, load: () async throws -> Value?) async throws -> Value? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        if let cached = await get(key), let value = try? decoder.decode(Value.self, from: Data(cached.utf8)) {
            Telemetry.cache(String(key.prefix { $0 != ":" }), hit: true)
            return value
        }
        Telemetry.cache(String(key.prefix { $0 != ":" }), hit: false)
        guard let value = try await load() else { return nil }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        if let data = try? encoder.encode(value) { await set(key, String(decoding: data, as: UTF8.self)) }
        return value
    }

    public func invalidate(_ keys: [String]) async {
        _ = try? await breaker.run { try await redis.delete(keys.map { prefix + $0 }) }
    }
}

extension RedisCache {
    /// A counter that names the current generation of a family of keys: bumping it invalidates every key built on it
    /// (for lookups whose keys cannot be listed, like a template in every requested language).
    public func generation(_ key: String) async -> String {
        await get(key) ?? "0"
    }

    public func bump(_ key: String) async {
        _ = try? await breaker.run { try await redis.command(["INCR", prefix + key]) }
    }
}
