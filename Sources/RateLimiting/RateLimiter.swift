import Breakers
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NotificationModel
import RedisCache

/// A limit: `rate` units per second on average, with bursts of up to `burst` at once.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var perSecond: Double
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// `"100/s"`, `"600/m"` or `"10000/h"` with a burst; `"0"` or `"off"` means no limit (nil).
    public static func parse(_ text: String, burst: Int?) -> Result<RateLimit?, RateLimitParseError> {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "0" || trimmed == "off" { return .success(nil) }
        let parts = trimmed.split(separator: "/")
        guard parts.count == 2, let count = Double(parts[0]), count > 0 else { return .failure(RateLimitParseError(text: text)) }
        let seconds: Double
        switch parts[1] {
        case "s", "sec", "second": seconds = 1
        case "m", "min", "minute": seconds = 60
        case "h", "hour": seconds = 3600
        default: return .failure(RateLimitParseError(text: text))
        }
        let burst = burst ?? max(1, Int(count.rounded(.up)))
        guard burst >= 1 else { return .failure(RateLimitParseError(text: text)) }
        return .success(RateLimit(perSecond: count / seconds, burst: burst))
    }

    /// Microseconds between two units at the average rate.
    var intervalMicros: Double { 1_000_000 / perSecond }

    public var description: String { "\(perSecond)/s burst \(burst)" }
}

public struct RateLimitParseError: Error, CustomStringConvertible {
    public var text: String
    public var description: String { "not a rate (use e.g. 100/s, 600/m, 0 for none): \(text)" }
}

/// What a check decided, with what the `RateLimit-*` headers report.
public struct RateDecision: Sendable, Equatable {
    public var allowed: Bool
    public var limit: Int
    public var remaining: Int
    /// Seconds until the burst is whole again.
    public var resetSeconds: Int
    /// Seconds until this request would be allowed (0 when it was).
    public var retryAfterSeconds: Int
}

/// GCRA (the generic cell rate algorithm) over Redis, shared by every gateway, with one atomic script per check.
/// When Redis fails, a breaker opens and the same algorithm runs in this process's memory, so limits keep holding
/// (per process) and no request waits on a dead Redis; the breaker logs each change once.
public final class RateLimiter: Sendable {
    let redis: RedisClient?
    let prefix: String
    public let breaker: CircuitBreaker
    private let local = NIOLockedValueBox([String: Double]())
    private let logger: Logger

    /// One GCRA step per key, in one round trip and one atomic step: KEYS are the buckets; ARGV[1] is 1 to stop at
    /// the first refusal (the buckets after it are neither charged nor reported) or 0 to decide each bucket on its
    /// own; then interval (µs), burst and cost per bucket. A refused bucket is not charged. (On a Redis Cluster the
    /// keys of one call would need one hash slot; the architecture has one Redis.)
    static let script = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local stop = ARGV[1] == '1'
        local results = {}
        for i, key in ipairs(KEYS) do
          local interval = tonumber(ARGV[3 * i - 1])
          local burst = tonumber(ARGV[3 * i])
          local cost = tonumber(ARGV[3 * i + 1])
          local tolerance = interval * burst
          local tat = tonumber(redis.call('GET', key) or '0')
          if tat < now then tat = now end
          local new_tat = tat + interval * cost
          if new_tat - tolerance > now then
            local remaining = math.floor((now - (tat - tolerance)) / interval)
            if remaining < 0 then remaining = 0 end
            results[i] = {0, remaining, math.ceil(new_tat - tolerance - now), math.ceil(tat - now)}
            if stop then return results end
          else
            redis.call('SET', key, string.format('%d', math.ceil(new_tat)), 'PX', math.ceil((new_tat - now) / 1000) + 1)
            results[i] = {1, math.floor((now - (new_tat - tolerance)) / interval), 0, math.ceil(new_tat - now)}
          end
        end
        return results
        """
    static let scriptSHA = Insecure.SHA1.hash(data: Data(script.utf8)).map { String(format: "%02x", $0) }.joined()

    public init(redis: RedisClient?, prefix: String, logger: Logger) {
        self.redis = redis
        self.prefix = prefix
        self.logger = logger
        self.breaker = CircuitBreaker(
            name: "redis-rate-limit",
            configuration: .init(consecutiveFailures: 2, maximumOpen: .seconds(30)),
            logger: logger
        )
    }

    /// Takes `cost` units from the bucket `key` under `limit`.
    public func check(_ key: String, limit: RateLimit, cost: Int = 1) async -> RateDecision {
        await checkMany([(key, cost)], limit: limit)[0]
    }

    /// Takes from several buckets under the same limit in one round trip to Redis (a bulk request's recipients):
    /// one decision per bucket, in order, each as if checked alone.
    public func checkMany(_ buckets: [(key: String, cost: Int)], limit: RateLimit) async -> [RateDecision] {
        guard !buckets.isEmpty else { return [] }
        if let redis, let decisions = try? await breaker.run({ try await self.checkRedis(redis, buckets, limit: limit) }) {
            return decisions
        }
        return buckets.map { checkLocal($0.key, limit: limit, cost: $0.cost) }
    }

    /// Takes from each bucket under its own limit, in order, in one round trip, until one refuses: the decisions of
    /// the buckets charged and of the one that refused (fewer than `buckets` when one did; a refused bucket is not
    /// charged, and the ones after it are not touched).
    public func checkChain(_ buckets: [(key: String, limit: RateLimit, cost: Int)]) async -> [RateDecision] {
        guard !buckets.isEmpty else { return [] }
        if let redis, let decisions = try? await breaker.run({ try await self.chainRedis(redis, buckets) }) {
            return decisions
        }
        var decisions: [RateDecision] = []
        for bucket in buckets {
            let decision = checkLocal(bucket.key, limit: bucket.limit, cost: bucket.cost)
            decisions.append(decision)
            if !decision.allowed { break }
        }
        return decisions
    }

    func chainRedis(_ redis: RedisClient, _ buckets: [(key: String, limit: RateLimit, cost: Int)]) async throws -> [RateDecision] {
        try await evaluate(redis, buckets, stopAtRefusal: true)
    }

    /// The script over `buckets`: one decision per bucket, in order (up to the first refusal when `stopAtRefusal`).
    func evaluate(_ redis: RedisClient, _ buckets: [(key: String, limit: RateLimit, cost: Int)], stopAtRefusal: Bool) async throws -> [RateDecision] {
        var arguments = [String(buckets.count)]
        arguments.reserveCapacity(4 * buckets.count + 2)
        for bucket in buckets { arguments.append(prefix + "rl:" + bucket.key) }
        arguments.append(stopAtRefusal ? "1" : "0")
        for bucket in buckets {
            arguments.append(String(bucket.limit.intervalMicros))
            arguments.append(String(bucket.limit.burst))
            arguments.append(String(bucket.cost))
        }
        let reply: RedisClient.Reply
        do {
            reply = try await redis.command(["EVALSHA", Self.scriptSHA] + arguments)
        } catch let error as RedisError where error.message.contains("NOSCRIPT") {
            reply = try await redis.command(["EVAL", Self.script] + arguments)
        }
        guard case .array(let results) = reply, (stopAtRefusal ? 1 : buckets.count)...buckets.count ~= results.count else {
            throw RedisError(message: "redis: unexpected reply from the rate-limit script")
        }
        return try zip(results, buckets).map { result, bucket in try Self.decision(result, limit: bucket.limit) }
    }

    static func decision(_ result: RedisClient.Reply, limit: RateLimit) throws -> RateDecision {
        guard case .array(let values) = result, values.count == 4,
            case .integer(let allowed) = values[0], case .integer(let remaining) = values[1],
            case .integer(let retryMicros) = values[2], case .integer(let resetMicros) = values[3]
        else { throw RedisError(message: "redis: unexpected reply from the rate-limit script") }
        return decision(allowed: allowed == 1, limit: limit, remaining: remaining, retryMicros: Double(retryMicros), resetMicros: Double(resetMicros))
    }

    func checkRedis(_ redis: RedisClient, _ buckets: [(key: String, cost: Int)], limit: RateLimit) async throws -> [RateDecision] {
        try await evaluate(redis, buckets.map { ($0.key, limit, $0.cost) }, stopAtRefusal: false)
    }

    /// Empties the bucket `key` (in Redis and in memory): a later check starts with the whole burst.
    public func reset(_ key: String) async {
        local.withLockedValue { $0[key] = nil }
        guard let redis else { return }
        _ = try? await breaker.run({ try await redis.command(["DEL", self.prefix + "rl:" + key]) })
    }

    /// The same algorithm in memory, for when Redis is unavailable.
    func checkLocal(_ key: String, limit: RateLimit, cost: Int) -> RateDecision {
        let elapsed = ContinuousClock.now - Self.origin
        let now = elapsed.inSeconds * 1_000_000
        return local.withLockedValue { buckets in
            if buckets.count > 100_000 { buckets = buckets.filter { $0.value > now } }
            let tat = max(buckets[key] ?? 0, now)
            let tolerance = limit.intervalMicros * Double(limit.burst)
            let newTAT = tat + limit.intervalMicros * Double(cost)
            if newTAT - tolerance > now {
                let remaining = max(0, Int(((now - (tat - tolerance)) / limit.intervalMicros).rounded(.down)))
                return Self.decision(
                    allowed: false,
                    limit: limit,
                    remaining: remaining,
                    retryMicros: newTAT - tolerance - now,
                    resetMicros: tat - now
                )
            }
            buckets[key] = newTAT
            let remaining = Int(((now - (newTAT - tolerance)) / limit.intervalMicros).rounded(.down))
            return Self.decision(allowed: true, limit: limit, remaining: remaining, retryMicros: 0, resetMicros: newTAT - now)
        }
    }

    static let origin = ContinuousClock.now

    static func decision(allowed: Bool, limit: RateLimit, remaining: Int, retryMicros: Double, resetMicros: Double) -> RateDecision {
        RateDecision(
            allowed: allowed,
            limit: limit.burst,
            remaining: max(0, min(remaining, limit.burst)),
            resetSeconds: max(0, Int((resetMicros / 1_000_000).rounded(.up))),
            retryAfterSeconds: allowed ? 0 : max(1, Int((retryMicros / 1_000_000).rounded(.up)))
        )
    }
}
