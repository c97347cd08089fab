import AsyncHTTPClient
import Breakers
import Broker
import Directory
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyConfig
import NotifyHTTP
import PostgresNIO
import PushTransport
import SMTPTransport
import ServiceLifecycle

public struct WorkerConfiguration: Sendable {
    public var channel: NotificationChannel
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var rabbit: RabbitSettings
    public var serviceKey: ServiceKeySettings
    public var usersURL: String
    public var templatesURL: String
    public var prefetch: Int
    public var workerName: String
    public var leaseSeconds: Int
    public var retryBaseMilliseconds: Int
    public var retryCapSeconds: Int
    // email
    public var smtpURL: String
    public var smtpUsername: String?
    public var smtpPassword: String?
    public var smtpConnections: Int
    public var mailFrom: String
    public var mailFromName: String
    public var messageIDDomain: String
    // push
    public var fcmURL: String
    public var fcmProject: String
    public var fcmAccessToken: String?

    public init(channel: NotificationChannel, _ env: EnvironmentReader) throws {
        var problems: [String] = []
        self.channel = channel
        let portKey = channel == .email ? "NOTIFY_EMAIL_WORKER_PORT" : "NOTIFY_PUSH_WORKER_PORT"
        listen = ListenSettings(env, portKey: portKey, defaultPort: channel == .email ? 8003 : 8004, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        rabbit = RabbitSettings(env, problems: &problems)
        serviceKey = ServiceKeySettings(env, problems: &problems)
        usersURL = env.string("NOTIFY_USERS_URL", default: "http://127.0.0.1:8001")
        templatesURL = env.string("NOTIFY_TEMPLATES_URL", default: "http://127.0.0.1:8002")
        prefetch = env.int("NOTIFY_WORKER_PREFETCH", default: 16, problems: &problems)
        leaseSeconds = env.int("NOTIFY_JOB_LEASE_SECONDS", default: 60, problems: &problems)
        retryBaseMilliseconds = env.int("NOTIFY_RETRY_BASE_MS", default: 5000, problems: &problems)
        retryCapSeconds = env.int("NOTIFY_RETRY_CAP_SECONDS", default: 3600, problems: &problems)
        workerName = env.string("NOTIFY_WORKER_NAME", default: "\(channel.rawValue)-worker-\(ProcessInfo.processInfo.processIdentifier)")
        let smtpHost = env.string("NOTIFY_SMTP_HOST", default: "127.0.0.1")
        let smtpPort = env.int("NOTIFY_SMTP_PORT", default: 2525, problems: &problems)
        smtpURL = env.string("NOTIFY_SMTP_URL", default: "smtp://\(smtpHost):\(smtpPort)")
        smtpUsername = env.optionalString("NOTIFY_SMTP_USERNAME")
        smtpPassword = env.optionalString("NOTIFY_SMTP_PASSWORD")
        smtpConnections = env.int("NOTIFY_SMTP_CONNECTIONS", default: 4, problems: &problems)
        mailFrom = env.string("NOTIFY_MAIL_FROM", default: "notifications@notify.local")
        mailFromName = env.string("NOTIFY_MAIL_FROM_NAME", default: "Notify")
        messageIDDomain = env.string("NOTIFY_MESSAGE_ID_DOMAIN", default: "notify.local")
        fcmURL = env.string("NOTIFY_FCM_URL", default: "https://fcm.googleapis.com")
        fcmProject = env.string("NOTIFY_FCM_PROJECT", default: "")
        fcmAccessToken = env.optionalString("NOTIFY_FCM_ACCESS_TOKEN")
        if channel == .push, fcmProject.isEmpty { problems.append("NOTIFY_FCM_PROJECT is required for the push worker") }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// An email or push worker: the AMQP consumer and delivery loop, plus an HTTP port for /health.
public func buildWorker(_ configuration: WorkerConfiguration, logger: Logger) -> some ApplicationProtocol {
    let postgres = PostgresClient(configuration: configuration.postgres.clientConfiguration(.notifications), backgroundLogger: logger)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    // A lost broker connection opens the consume circuit at once (the fallback takes over); reconnect probes back off
    // from 0.5 s to 5 s, so recovery is noticed within seconds.
    let brokerBreaker = CircuitBreaker(
        name: "rabbitmq",
        configuration: .init(consecutiveFailures: 1, baseOpen: .milliseconds(500), maximumOpen: .seconds(5)),
        logger: logger
    )
    let consumer = AMQPConsumer(
        configuration: .init(
            host: configuration.rabbit.amqpHost,
            port: configuration.rabbit.amqpPort,
            user: configuration.rabbit.user,
            password: configuration.rabbit.password,
            vhost: configuration.rabbit.vhost,
            queue: configuration.channel.queueName,
            prefetch: configuration.prefetch
        ),
        breaker: brokerBreaker,
        logger: logger
    )
    let providerBreaker = CircuitBreaker(name: configuration.channel == .email ? "smtp" : "push-provider", logger: logger)
    let usersBreaker = CircuitBreaker(name: "users-service", logger: logger)
    let templatesBreaker = CircuitBreaker(name: "templates-service", logger: logger)
    let deliverer: any Deliverer
    switch configuration.channel {
    case .email:
        let smtp = SMTPTransport(
            configuration: .init(
                url: configuration.smtpURL,
                username: configuration.smtpUsername,
                password: configuration.smtpPassword,
                connections: configuration.smtpConnections
            )
        )
        deliverer = EmailDeliverer(
            smtp: smtp,
            breaker: providerBreaker,
            from: configuration.mailFrom,
            fromName: configuration.mailFromName,
            messageIDDomain: configuration.messageIDDomain
        )
    case .push:
        deliverer = PushDeliverer(
            fcm: FCMTransport(
                http: http,
                baseURL: configuration.fcmURL,
                projectID: configuration.fcmProject,
                accessToken: configuration.fcmAccessToken
            ),
            breaker: providerBreaker
        )
    }
    let worker = DeliveryWorker(
        consumer: consumer,
        postgres: postgres,
        directory: PlatformDirectory(
            http: http,
            usersURL: configuration.usersURL,
            templatesURL: configuration.templatesURL,
            serviceKey: configuration.serviceKey.key,
            usersBreaker: usersBreaker,
            templatesBreaker: templatesBreaker
        ),
        deliverer: deliverer,
        configuration: .init(
            workerName: configuration.workerName,
            slots: configuration.prefetch,
            lease: .seconds(configuration.leaseSeconds),
            retryBase: .milliseconds(configuration.retryBaseMilliseconds),
            retryCap: .seconds(configuration.retryCapSeconds)
        ),
        logger: logger
    )

    let router = Router(context: NotifyRequestContext.self)
    router.add(middleware: EnvelopeMiddleware())
    HealthRoutes(
        service: "\(configuration.channel.rawValue)-worker",
        checks: [
            .timed("postgres") { _ = try await postgres.query("SELECT 1", logger: logger) },
            HealthCheck("rabbitmq", critical: false) {
                consumer.isConnected
                    ? DependencyHealth(status: .up) : DependencyHealth(status: .degraded, detail: "not consuming: delivering from PostgreSQL")
            },
            .breaker(brokerBreaker), .breaker(providerBreaker), .breaker(usersBreaker), .breaker(templatesBreaker),
        ]
    ).register(on: router)

    return Application(
        router: router,
        configuration: .init(
            address: .hostname(configuration.listen.host, port: configuration.listen.port),
            serverName: "notify-\(configuration.channel.rawValue)-worker"
        ),
        services: [postgres, HTTPClientService(client: http), worker],
        logger: logger
    )
}
