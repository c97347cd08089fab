import APIDocs
import AsyncHTTPClient
import Broker
import Credentials
import Hummingbird
import JobQueue
import Logging
import NotifyConfig
import NotifyHTTP
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import RateLimiting
import RedisCache

public struct AdminConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var rabbit: RabbitSettings
    /// `Secure` and `__Host-` on the session cookie (`NOTIFY_ADMIN_COOKIE_SECURE`; false only for local http).
    public var secureCookie: Bool
    /// The processes whose health the overview shows, by name.
    public var services: [(name: String, url: String)]
    /// Lifetime of an operator's session (the dashboard cookie).
    public var sessionSeconds: Int
    /// Where operator-login attempts are counted (shared by every admin replica).
    public var redis: RedisSettings
    public var loginThrottle: LoginThrottleSettings
    /// Seals the signing secrets of client webhooks (`NOTIFY_WEBHOOK_SECRET_KEY`, the relay's value); nil: endpoints
    /// cannot be created.
    public var webhookSecrets: WebhookSecrets?
    /// Which URLs a webhook endpoint may have (`NOTIFY_WEBHOOK_ALLOW_LOOPBACK` admits loopback for local use).
    public var webhookPolicy: EndpointPolicy
    /// The dashboard manages users and templates through their services' APIs with this key (`NOTIFY_SERVICE_KEY`);
    /// nil: those pages answer 503.
    public var serviceKey: String?

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_ADMIN_PORT", defaultPort: 8005, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        rabbit = RabbitSettings(env, problems: &problems)
        secureCookie = env.string("NOTIFY_ADMIN_COOKIE_SECURE", default: "true") != "false"
        sessionSeconds = env.int("NOTIFY_ADMIN_SESSION_SECONDS", default: 8 * 3600, problems: &problems)
        redis = RedisSettings(env, problems: &problems)
        loginThrottle = LoginThrottleSettings(env, problems: &problems)
        webhookSecrets = WebhookSettings.secrets(env, problems: &problems)
        webhookPolicy = WebhookSettings.policy(env)
        serviceKey = env.optionalString("NOTIFY_SERVICE_KEY")
        let host = env.string("NOTIFY_SERVICES_HOST", default: "127.0.0.1")
        func url(_ name: String, _ urlKey: String, _ portKey: String, _ port: Int) -> (String, String) {
            let port = env.int(portKey, default: port, problems: &problems)
            return (name, env.string(urlKey, default: "http://\(host):\(port)"))
        }
        services = [
            url("gateway", "NOTIFY_GATEWAY_URL", "NOTIFY_GATEWAY_PORT", 8000),
            url("users", "NOTIFY_USERS_URL", "NOTIFY_USERS_PORT", 8001),
            url("templates", "NOTIFY_TEMPLATES_URL", "NOTIFY_TEMPLATES_PORT", 8002),
            url("email-worker", "NOTIFY_EMAIL_WORKER_URL", "NOTIFY_EMAIL_WORKER_PORT", 8003),
            url("push-worker", "NOTIFY_PUSH_WORKER_URL", "NOTIFY_PUSH_WORKER_PORT", 8004),
            url("sms-worker", "NOTIFY_SMS_WORKER_URL", "NOTIFY_SMS_WORKER_PORT", 8007),
            url("relay", "NOTIFY_RELAY_URL", "NOTIFY_RELAY_PORT", 8006),
        ]
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The admin service (port 8005): operator login (a session cookie for the dashboard), API key management, an
/// overview of the platform (health of every process, job states, throughput, backlog, queues, breakers), dead
/// letters with replay, and the dashboard at `/admin/`. API clients use an API key with the `admin` scope.
public func buildAdmin(_ configuration: AdminConfiguration, logger: Logger) async -> some ApplicationProtocol {
    let postgres = Database(configuration.postgres, database: .notifications, applicationName: "notify-admin", logger: logger)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    // The overview's health probes: a process that is down refuses the connection, and that is the answer at once
    // ("unreachable"), not after connection retries that last the probe's whole timeout.
    var probing = HTTPClient.Configuration()
    probing.connectionPool.retryConnectionEstablishment = false
    let probes = HTTPClient(eventLoopGroupProvider: .singleton, configuration: probing)
    let management = RabbitManagementClient(
        http: http,
        baseURL: configuration.rabbit.managementURL,
        user: configuration.rabbit.user,
        password: configuration.rabbit.password,
        vhost: configuration.rabbit.vhost
    )
    let admins = AdminUserStore(client: postgres, logger: logger)
    let router = serviceRouter(
        service: "admin",
        checks: [
            .timed("postgres") { try await postgres.check() },
            .timed("rabbitmq", critical: false) { try await management.ping() },
        ],
        unavailable: Database.isUnavailable,
        document: APIDocument.admin
    )
    let redis = RedisClient(
        host: configuration.redis.host,
        port: configuration.redis.port,
        timeoutMilliseconds: configuration.redis.timeoutMilliseconds,
        username: configuration.redis.username,
        password: configuration.redis.password
    )
    let throttle = LoginThrottle(
        limiter: RateLimiter(redis: redis, prefix: configuration.redis.keyPrefix, logger: logger),
        scope: "admin",
        attemptsPerAccount: configuration.loginThrottle.attemptsPerAccount,
        attemptsPerAddress: configuration.loginThrottle.attemptsPerAddress,
        windowSeconds: configuration.loginThrottle.windowSeconds
    )
    // Operators' logins at the default priority: they must get through when the platform is saturated.
    let hasher = PasswordHasher(niceness: 0)
    let session = SessionController(
        admins: admins,
        hasher: hasher,
        lifetime: configuration.sessionSeconds,
        secureCookie: configuration.secureCookie,
        throttle: throttle,
        logger: logger
    )
    session.registerPublic(on: router)
    let store = APIKeyStore(client: postgres, logger: logger)
    let api = router.group().add(
        middleware: AdminAuthMiddleware(
            admins: admins,
            cookie: session.cookie,
            credentials: CredentialMiddleware(
                // No service key: nothing of the platform calls admin, and admin calls nothing that needs one.
                serviceKey: nil,
                tokens: nil,
                store: store,
                cacheSeconds: 0
            )
        )
    )
    APIKeyController(store: store).register(on: api)
    SuppressionController(list: SuppressionList(client: postgres, logger: logger)).register(on: api)
    DirectoryController(
        http: http,
        usersURL: configuration.services.first { $0.name == "users" }?.url ?? "http://127.0.0.1:8001",
        templatesURL: configuration.services.first { $0.name == "templates" }?.url ?? "http://127.0.0.1:8002",
        serviceKey: configuration.serviceKey
    ).register(on: api)
    WebhookController(
        store: WebhookStore(client: postgres, logger: logger),
        secrets: configuration.webhookSecrets,
        policy: configuration.webhookPolicy
    ).register(on: api)
    OverviewController(
        postgres: postgres,
        management: management,
        http: probes,
        services: configuration.services.map { ServiceEndpoint(name: $0.name, url: $0.url) },
        logger: logger
    ).register(on: api)
    session.register(on: api)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-admin"),
        services: [postgres, HTTPClientService(client: http), HTTPClientService(client: probes), hasher],
        logger: logger
    )
}
