import AsyncHTTPClient
import Breakers
import Broker
import Credentials
import Hummingbird
import JobQueue
import Logging
import NIOConcurrencyHelpers
import NotifyConfig
import NotifyHTTP
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import ServiceLifecycle

public struct RelayConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var rabbit: RabbitSettings
    public var relay: OutboxRelay.Configuration
    public var redispatchAfterSeconds: Int
    /// How long a newly elected maintenance leader waits before it rescues expired leases (see `rescueGrace`).
    public var rescueGraceSeconds: Int
    /// How messages reach RabbitMQ: `http` (the management API) or `amqp` (AMQP 0-9-1 with publisher confirms).
    public var publisher: String
    /// Opens the signing secrets of client webhooks (`NOTIFY_WEBHOOK_SECRET_KEY`, admin's value); nil: no webhooks are sent.
    public var webhookSecrets: WebhookSecrets?
    public var webhookPolicy: EndpointPolicy
    public var webhooks: WebhookDispatcher.Configuration

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_RELAY_PORT", defaultPort: 8006, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        rabbit = RabbitSettings(env, problems: &problems)
        let httpBatch = env.int("NOTIFY_RELAY_HTTP_BATCH", default: 100, problems: &problems)
        let httpBatchBytes = env.int("NOTIFY_RELAY_HTTP_BATCH_BYTES", default: 256 * 1024, problems: &problems)
        if httpBatch < 1 { problems.append("NOTIFY_RELAY_HTTP_BATCH must be at least 1") }
        if httpBatchBytes < 1024 { problems.append("NOTIFY_RELAY_HTTP_BATCH_BYTES must be at least 1024") }
        let linger = env.int("NOTIFY_RELAY_LINGER_MS", default: 20, problems: &problems)
        if linger < 0 { problems.append("NOTIFY_RELAY_LINGER_MS must not be negative") }
        relay = OutboxRelay.Configuration(
            batchSize: env.int("NOTIFY_RELAY_BATCH", default: 400, problems: &problems),
            concurrency: env.int("NOTIFY_RELAY_CONCURRENCY", default: 16, problems: &problems),
            pollInterval: .milliseconds(env.int("NOTIFY_RELAY_POLL_MS", default: 1000, problems: &problems)),
            httpBatch: httpBatch,
            httpBatchBytes: httpBatchBytes,
            linger: .milliseconds(max(0, linger))
        )
        redispatchAfterSeconds = env.int("NOTIFY_REDISPATCH_AFTER_SECONDS", default: 120, problems: &problems)
        rescueGraceSeconds = env.int("NOTIFY_RESCUE_GRACE_SECONDS", default: 30, problems: &problems)
        if rescueGraceSeconds < 0 { problems.append("NOTIFY_RESCUE_GRACE_SECONDS must not be negative") }
        publisher = env.string("NOTIFY_RELAY_PUBLISHER", default: "http")
        if !["http", "amqp"].contains(publisher) { problems.append("NOTIFY_RELAY_PUBLISHER must be http or amqp") }
        webhookSecrets = WebhookSettings.secrets(env, problems: &problems)
        webhookPolicy = WebhookSettings.policy(env)
        webhooks = WebhookDispatcher.Configuration()
        webhooks.concurrency = env.int("NOTIFY_WEBHOOK_CONCURRENCY", default: 16, problems: &problems)
        webhooks.maxAttempts = env.int("NOTIFY_WEBHOOK_MAX_ATTEMPTS", default: 10, problems: &problems)
        webhooks.retryBase = .milliseconds(env.int("NOTIFY_WEBHOOK_RETRY_BASE_MS", default: 10_000, problems: &problems))
        webhooks.retryCap = .seconds(env.int("NOTIFY_WEBHOOK_RETRY_CAP_SECONDS", default: 3600, problems: &problems))
        if webhooks.concurrency < 1 || webhooks.maxAttempts < 1 {
            problems.append("NOTIFY_WEBHOOK_CONCURRENCY and NOTIFY_WEBHOOK_MAX_ATTEMPTS must be at least 1")
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The outbox relay (port 8006 for /health): its own process, the only publisher of notification work.
public func buildRelay(_ configuration: RelayConfiguration, logger: Logger) -> some ApplicationProtocol {
    let postgres = Database(configuration.postgres, database: .notifications, applicationName: "notify-relay", logger: logger)
    var httpConfiguration = HTTPClient.Configuration()
    httpConfiguration.connectionPool = .init(
        idleTimeout: .seconds(60),
        concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.relay.concurrency)
    )
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
    let management = RabbitManagementClient(
        http: http,
        baseURL: configuration.rabbit.managementURL,
        user: configuration.rabbit.user,
        password: configuration.rabbit.password,
        vhost: configuration.rabbit.vhost
    )
    let breaker = CircuitBreaker(
        name: "rabbitmq",
        configuration: .init(consecutiveFailures: 3, baseOpen: .milliseconds(500), maximumOpen: .seconds(5)),
        logger: logger
    )
    let amqp =
        configuration.publisher == "amqp"
        ? AMQPPublisher(configuration: .init(server: AMQPServer(configuration.rabbit)), logger: logger) : nil
    let relay = OutboxRelay(
        postgres: postgres,
        management: management,
        amqp: amqp,
        breaker: breaker,
        configuration: configuration.relay,
        logger: logger
    )
    var maintenanceConfiguration = MaintenanceService.Configuration()
    maintenanceConfiguration.rescuer.redispatchAfter = .seconds(configuration.redispatchAfterSeconds)
    maintenanceConfiguration.rescueGrace = .seconds(configuration.rescueGraceSeconds)
    let maintenance = MaintenanceService(client: postgres, configuration: maintenanceConfiguration, logger: logger)

    let webhooks = configuration.webhookSecrets.map { secrets in
        WebhookDispatcher(
            store: WebhookStore(client: postgres, logger: logger),
            secrets: secrets,
            policy: configuration.webhookPolicy,
            configuration: configuration.webhooks,
            logger: logger
        )
    }
    let router = serviceRouter(
        service: "relay",
        checks: [
            .timed("postgres") { try await postgres.check() },
            .timed("rabbitmq", critical: false) { try await management.ping() },
            .breaker(breaker),
            HealthCheck("topology", critical: false) {
                relay.isTopologyDeclared
                    ? DependencyHealth(status: .up, detail: "declared") : DependencyHealth(status: .down, detail: "not declared yet")
            },
            HealthCheck("maintenance", critical: false) {
                DependencyHealth(status: .up, detail: maintenance.isLeader.withLockedValue { $0 } ? "leader" : "standby")
            },
        ],
        unavailable: Database.isUnavailable,
        metrics: MetricsRoute(collectors: RelayMetrics.collectors(postgres: postgres, management: management, logger: logger))
    )

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-relay"),
        services: [postgres, HTTPClientService(client: http), maintenance, relay] + (webhooks.map { [$0] } ?? []),
        logger: logger
    )
}
