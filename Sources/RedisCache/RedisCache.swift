import Foundation
import Logging
import NIOConcurrencyHelpers

/// A read-through cache in Redis. Redis is an optimisation, never a dependency: when it fails, lookups go straight
/// to the source and the change of state is logged once per transition.
public struct RedisCache: Sendable {
    let redis: RedisClient
    let prefix: String
    let ttlSeconds: Int
    let logger: Logger
    private let healthy = NIOLockedValueBox(true)

    public init(redis: RedisClient, prefix: String, ttlSeconds: Int, logger: Logger) {
        self.redis = redis
        self.prefix = prefix
        self.ttlSeconds = ttlSeconds
        self.logger = logger
    }

    public func get(_ key: String) async -> String? {
        do {
            let value = try await redis.get(prefix + key)
            note(success: true)
            return value
        } catch {
            note(success: false)
            return nil
        }
    }

    public func set(_ key: String, _ value: String) async {
        do {
            try await redis.set(prefix + key, value, ttlSeconds: ttlSeconds)
            note(success: true)
        } catch {
            note(success: false)
        }
    }

    public func invalidate(_ keys: [String]) async {
        do {
            try await redis.delete(keys.map { prefix + $0 })
            note(success: true)
        } catch {
            note(success: false)
        }
    }

    private func note(success: Bool) {
        let changed = healthy.withLockedValue { state -> Bool in
            defer { state = success }
            return state != success
        }
        if changed {
            if success { logger.info("redis cache available again") } else { logger.warning("redis cache unavailable, bypassing it") }
        }
    }
}
