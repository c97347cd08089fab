import Breakers
import Foundation
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Metrics for every process: swift-metrics backed by a Prometheus registry, served at `GET /metrics` in the
/// Prometheus text format. Counters and timers are recorded where things happen; gauges that describe shared state
/// (job states, backlogs, queue depths, breakers) are refreshed by collectors when `/metrics` is scraped.
public enum Telemetry {
    public static let registry = PrometheusCollectorRegistry()

    /// The registry in the Prometheus text format (what `/metrics` answers).
    public static func exposition() -> [UInt8] { registry.emitToBuffer() }
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

    /// One attempt of a client webhook: delivered, retried or dead_lettered.
    public static func webhook(outcome: String) {
        Counter(label: "notify_webhook_deliveries_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// A client withdrew a notification before it was sent.
    public static func cancelled() {
        Counter(label: "notify_notifications_cancelled_total").increment()
    }

    public static func sent(channel: String) {
        Counter(label: "notify_notifications_sent_total", dimensions: [("channel", channel)]).increment()
    }

    public static func failed(channel: String) {
        Counter(label: "notify_notifications_failed_total", dimensions: [("channel", channel)]).increment()
    }

    /// An email provider's webhook event applied (delivered, hard_bounce, soft_bounce, complained).
    public static func emailEvent(provider: String, kind: String) {
        Counter(label: "notify_email_events_total", dimensions: [("provider", provider), ("event", kind)]).increment()
    }

    /// An SMS provider's report applied (delivered, undelivered, failed) or an inbound opt-out / opt-in.
    public static func smsEvent(provider: String, status: String) {
        Counter(label: "notify_sms_events_total", dimensions: [("provider", provider), ("event", status)]).increment()
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
