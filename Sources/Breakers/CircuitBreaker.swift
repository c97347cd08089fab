import Logging
import NIOConcurrencyHelpers

/// Time as a breaker sees it; tests drive a manual clock, processes use the monotonic clock.
public protocol BreakerClock: Sendable {
    func now() -> Duration
}

public struct MonotonicBreakerClock: BreakerClock {
    let origin = ContinuousClock.now
    public init() {}
    public func now() -> Duration { ContinuousClock.now - origin }
}

/// A circuit breaker: closed (calls pass, outcomes recorded in a sliding window), open (calls refused without being
/// tried), half-open (a probe is let through; its success closes the breaker, its failure opens it again for longer).
/// It trips on `consecutiveFailures` in a row, or when at least `minimumCalls` of the last `windowSize` calls were made
/// and the failure ratio reaches `failureRatio`. Open time doubles with each trip in a row, up to `maximumOpen`.
public final class CircuitBreaker: Sendable {
    public enum State: String, Sendable, Codable {
        case closed, open
        case halfOpen = "half_open"
    }

    public struct Configuration: Sendable {
        public var windowSize: Int
        public var minimumCalls: Int
        public var failureRatio: Double
        public var consecutiveFailures: Int
        public var baseOpen: Duration
        public var maximumOpen: Duration
        public var halfOpenProbes: Int

        public init(
            windowSize: Int = 20,
            minimumCalls: Int = 10,
            failureRatio: Double = 0.5,
            consecutiveFailures: Int = 5,
            baseOpen: Duration = .seconds(1),
            maximumOpen: Duration = .seconds(60),
            halfOpenProbes: Int = 1
        ) {
            self.windowSize = windowSize
            self.minimumCalls = minimumCalls
            self.failureRatio = failureRatio
            self.consecutiveFailures = consecutiveFailures
            self.baseOpen = baseOpen
            self.maximumOpen = maximumOpen
            self.halfOpenProbes = halfOpenProbes
        }
    }

    public struct Snapshot: Sendable, Equatable {
        public var state: State
        public var trips: Int
        public var openFor: Duration?
    }

    struct Inner {
        var state: State = .closed
        var window: [Bool] = []
        var consecutiveFailures = 0
        var openedAt: Duration = .zero
        var openDuration: Duration = .zero
        var tripsInARow = 0
        var totalTrips = 0
        var probesInFlight = 0
    }

    public let name: String
    let configuration: Configuration
    let clock: any BreakerClock
    let inner = NIOLockedValueBox(Inner())
    let onTransition: (@Sendable (_ name: String, _ from: State, _ to: State) -> Void)?

    public init(
        name: String,
        configuration: Configuration = .init(),
        clock: any BreakerClock = MonotonicBreakerClock(),
        onTransition: (@Sendable (_ name: String, _ from: State, _ to: State) -> Void)? = nil
    ) {
        self.name = name
        self.configuration = configuration
        self.clock = clock
        self.onTransition = onTransition
        let entry = WeakBreaker(self)
        Self.registry.withLockedValue { entries in
            entries.removeAll { $0.breaker == nil }
            entries.append(entry)
        }
    }

    private static let registry = NIOLockedValueBox<[WeakBreaker]>([])

    /// Every breaker alive in this process (for metrics).
    public static var all: [CircuitBreaker] { registry.withLockedValue { $0.compactMap(\.breaker) } }

    /// The current state; an open breaker whose time is up reads as half-open.
    public var state: State {
        let now = clock.now()
        return inner.withLockedValue { inner in
            if inner.state == .open, now >= inner.openedAt + inner.openDuration { return .halfOpen }
            return inner.state
        }
    }

    public var snapshot: Snapshot {
        let now = clock.now()
        return inner.withLockedValue { inner in
            let remaining = inner.state == .open ? max(.zero, inner.openedAt + inner.openDuration - now) : nil
            let state: State = inner.state == .open && remaining == .zero ? .halfOpen : inner.state
            return Snapshot(state: state, trips: inner.totalTrips, openFor: remaining)
        }
    }

    /// Time until an open breaker lets a probe through (zero when it would let a call through now).
    public var retryAfter: Duration {
        snapshot.openFor ?? .zero
    }

    /// Asks to make a call. A caller that got `true` must report the outcome with `record(success:)`.
    public func allow() -> Bool {
        let now = clock.now()
        var transition: (State, State)?
        let allowed = inner.withLockedValue { inner -> Bool in
            switch inner.state {
            case .closed:
                return true
            case .open:
                guard now >= inner.openedAt + inner.openDuration else { return false }
                inner.state = .halfOpen
                inner.probesInFlight = 1
                transition = (.open, .halfOpen)
                return true
            case .halfOpen:
                guard inner.probesInFlight < configuration.halfOpenProbes else { return false }
                inner.probesInFlight += 1
                return true
            }
        }
        if let (from, to) = transition { onTransition?(name, from, to) }
        return allowed
    }

    public func record(success: Bool) {
        let now = clock.now()
        var transition: (State, State)?
        inner.withLockedValue { inner in
            switch inner.state {
            case .halfOpen:
                inner.probesInFlight = max(0, inner.probesInFlight - 1)
                if success {
                    inner = Inner(totalTrips: inner.totalTrips)
                    transition = (.halfOpen, .closed)
                } else {
                    trip(&inner, now: now)
                    transition = (.halfOpen, .open)
                }
            case .closed:
                inner.window.append(success)
                if inner.window.count > configuration.windowSize { inner.window.removeFirst(inner.window.count - configuration.windowSize) }
                inner.consecutiveFailures = success ? 0 : inner.consecutiveFailures + 1
                let failures = inner.window.lazy.filter { !$0 }.count
                let ratioTripped =
                    inner.window.count >= configuration.minimumCalls
                    && Double(failures) / Double(inner.window.count) >= configuration.failureRatio
                if !success, inner.consecutiveFailures >= configuration.consecutiveFailures || ratioTripped {
                    trip(&inner, now: now)
                    transition = (.closed, .open)
                }
            case .open:
                // An outcome of a call let through before the breaker opened: nothing to learn.
                break
            }
        }
        if let (from, to) = transition { onTransition?(name, from, to) }
    }

    /// A call that was let through but ended without an outcome of the dependency (its caller was cancelled): nothing
    /// is learnt, and a half-open breaker lets the next probe through.
    public func abandon() {
        inner.withLockedValue { inner in
            if inner.state == .halfOpen { inner.probesInFlight = max(0, inner.probesInFlight - 1) }
        }
    }

    private func trip(_ inner: inout Inner, now: Duration) {
        let exponent = min(inner.tripsInARow, 30)
        var duration = configuration.baseOpen * (1 << exponent)
        if duration > configuration.maximumOpen { duration = configuration.maximumOpen }
        inner.state = .open
        inner.openedAt = now
        inner.openDuration = duration
        inner.tripsInARow += 1
        inner.totalTrips += 1
        inner.window.removeAll()
        inner.consecutiveFailures = 0
        inner.probesInFlight = 0
    }

    /// Runs `body` through the breaker: refused at once while open, outcome recorded otherwise.
    /// `isFailure` decides which errors count against the dependency (a 404 for a missing user does not). A call whose
    /// caller was cancelled (a sibling lookup failed, a deadline of the caller's passed) says nothing about the
    /// dependency and is not counted.
    public func run<T>(_ body: () async throws -> T, isFailure: (any Error) -> Bool = { _ in true }) async throws -> T {
        guard allow() else { throw BreakerOpenError(name: name, retryAfter: retryAfter) }
        do {
            let value = try await body()
            record(success: true)
            return value
        } catch {
            if Task.isCancelled || error is CancellationError {
                abandon()
            } else {
                record(success: !isFailure(error))
            }
            throw error
        }
    }
}

public struct BreakerOpenError: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var retryAfter: Duration
    public var description: String { "circuit \(name) is open" }

    public init(name: String, retryAfter: Duration) {
        self.name = name
        self.retryAfter = retryAfter
    }
}

extension CircuitBreaker {
    /// A breaker that logs each change of state once (a warning when it opens, info otherwise).
    public convenience init(name: String, configuration: Configuration = .init(), logger: Logger) {
        self.init(name: name, configuration: configuration) { name, from, to in
            let metadata: Logger.Metadata = ["circuit": .string(name), "from": .string(from.rawValue), "to": .string(to.rawValue)]
            if to == .open { logger.warning("circuit opened", metadata: metadata) } else { logger.info("circuit changed", metadata: metadata) }
        }
    }
}

private final class WeakBreaker: @unchecked Sendable {
    weak var breaker: CircuitBreaker?
    init(_ breaker: CircuitBreaker) { self.breaker = breaker }
}
