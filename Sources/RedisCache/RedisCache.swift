import Breakers
import Foundation
import Logging
import NIOConcurrencyHelpers

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

    public func invalidate(_ keys: [String]) async {
        _ = try? await breaker.run { try await redis.delete(keys.map { prefix + $0 }) }
    }
}
