import Breakers
import Foundation
import Hummingbird
import Metrics
import NIOConcurrencyHelpers
import NotifyHTTP
import Prometheus

/// Metrics for every process: swift-metrics backed by a Prometheus registry, served at `GET /metrics` in the
/// Prometheus text format. Counters and timers are recorded where things happen; gauges that describe shared state
/// (job states, backlogs, queue depths, breakers) are refreshed by collectors when `/metrics` is scraped.
public enum Telemetry {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = NIOLockedValueBox(false)

    /// Installs the Prometheus backend once per process.
    public static func bootstrap() {
        let first = bootstrapped.withLockedValue { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        ]
        MetricsSystem.bootstrap(factory)
    }

    // MARK: the platform's own metrics (names follow Prometheus conventions)

    public static func accepted(channel: String, count: Int = 1) {
        Counter(label: "notify_notifications_accepted_total", dimensions: [("channel", channel)]).increment(by: count)
    }

    public static func sent(channel: String) {
        Counter(label: "notify_notifications_sent_total", dimensions: [("channel", channel)]).increment()
    }

    public static func failed(channel: String) {
        Counter(label: "notify_notifications_failed_total", dimensions: [("channel", channel)]).increment()
    }

    public static func retried(channel: String) {
        Counter(label: "notify_notifications_retried_total", dimensions: [("channel", channel)]).increment()
    }

    /// A broker message whose job was not claimable (done, taken from PostgreSQL, withdrawn): acked and dropped.
    public static func dropped(queue: String) {
        Counter(label: "notify_messages_dropped_total", dimensions: [("queue", queue)]).increment()
    }

    public static func rateLimited(scope: String) {
        Counter(label: "notify_rate_limited_total", dimensions: [("scope", scope)]).increment()
    }

    public static func published(count: Int) {
        Counter(label: "notify_outbox_published_total").increment(by: count)
    }

    /// Time spent in one call to a provider (SMTP, FCM, Web Push, the RabbitMQ publish).
    public static func providerLatency(_ provider: String, since start: ContinuousClock.Instant, outcome: String) {
        let elapsed = ContinuousClock.now - start
        Timer(label: "notify_provider_request_duration_seconds", dimensions: [("provider", provider), ("outcome", outcome)])
            .recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// How many single creates shared one gateway transaction.
    public static func commitBatch(size: Int) {
        Recorder(label: "notify_gateway_commit_batch_size", aggregate: true).record(size)
    }

    public static func cache(_ name: String, hit: Bool) {
        Counter(label: "notify_cache_requests_total", dimensions: [("cache", name), ("result", hit ? "hit" : "miss")]).increment()
    }

    public static func gauge(_ label: String, _ value: Double, _ dimensions: [(String, String)] = []) {
        Gauge(label: label, dimensions: dimensions).record(value)
    }

    /// Every circuit breaker of this process: 0 closed, 1 half-open, 2 open.
    public static func recordBreakers() {
        for breaker in CircuitBreaker.all {
            let value: Double
            switch breaker.state {
            case .closed: value = 0
            case .halfOpen: value = 1
            case .open: value = 2
            }
            gauge("notify_circuit_breaker_state", value, [("breaker", breaker.name)])
        }
    }
}

/// `GET /metrics` (public, like `/health`): runs the collectors, then emits the registry.
public struct MetricsRoute: Sendable {
    /// Who may read `/metrics` (`NOTIFY_METRICS_ACCESS`): `loopback` (the default: callers on this host, or any caller
    /// with `Authorization: Bearer $NOTIFY_METRICS_TOKEN`) or `public` (anyone who can reach the port: leave that
    /// to network policy). Others get 404, as if there were no such page.
    public enum Access: String, Sendable { case loopback, `public` }

    let collectors: [@Sendable () async -> Void]
    let access: Access
    let token: String?

    public init(
        collectors: [@Sendable () async -> Void] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.collectors = collectors
        self.access = Access(rawValue: environment["NOTIFY_METRICS_ACCESS"] ?? "") ?? .loopback
        self.token = environment["NOTIFY_METRICS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether this caller may read the metrics.
    public static func allows(peer: String?, authorization: String?, access: Access, token: String?) -> Bool {
        if access == .public { return true }
        if let token, let authorization, authorization.hasPrefix("Bearer ") {
            let given = Array(authorization.dropFirst("Bearer ".count).utf8)
            let expected = Array(token.utf8)
            // Constant time over the expected length.
            var difference = given.count ^ expected.count
            for index in expected.indices { difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0)) }
            if difference == 0 { return true }
        }
        guard let peer else { return false }
        return peer == "127.0.0.1" || peer == "::1" || peer.hasPrefix("127.") || peer == "::ffff:127.0.0.1"
    }

    public func register(on router: Router<NotifyRequestContext>) {
        router.get("/metrics") { [access, token] request, context -> Response in
            guard Self.allows(peer: context.remoteAddress, authorization: request.headers[.authorization], access: access, token: token) else {
                throw APIError.notFound("NOT_FOUND", "No such page")
            }
            Telemetry.recordBreakers()
            await withTaskGroup(of: Void.self) { group in
                for collector in collectors { group.addTask { await collector() } }
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: Telemetry.registry.emitToBuffer()))
            )
        }
    }
}
