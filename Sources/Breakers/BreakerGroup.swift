import Logging
import NIOConcurrencyHelpers

/// One circuit breaker per destination of a kind (per Web Push service origin), so one failing destination (one a
/// user chose, say) pauses sending to it alone. At most `capacity` are kept; closed ones are dropped first.
public final class BreakerGroup: Sendable {
    public let name: String
    let configuration: CircuitBreaker.Configuration
    let capacity: Int
    let logger: Logger
    private let breakers = NIOLockedValueBox([String: CircuitBreaker]())

    public init(name: String, configuration: CircuitBreaker.Configuration = .init(), capacity: Int = 256, logger: Logger) {
        self.name = name
        self.configuration = configuration
        self.capacity = capacity
        self.logger = logger
    }

    /// The breaker of `key`, made on first use.
    public func breaker(for key: String) -> CircuitBreaker {
        breakers.withLockedValue { breakers in
            if let breaker = breakers[key] { return breaker }
            if breakers.count >= capacity {
                for (other, breaker) in breakers where breaker.state == .closed { breakers[other] = nil }
            }
            let breaker = CircuitBreaker(name: "\(name) \(key)", configuration: configuration, logger: logger)
            if breakers.count < capacity { breakers[key] = breaker }
            return breaker
        }
    }

    /// The keys whose breaker is not closed.
    public var notClosed: [String] {
        breakers.withLockedValue { $0.filter { $0.value.state != .closed }.map(\.key).sorted() }
    }
}
