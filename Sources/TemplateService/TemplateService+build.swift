import APIDocs
import Hummingbird
import Logging
import NotificationModel
import NotifyConfig
import NotifyHTTP
import PostgresAccess
import PostgresNIO
import RedisCache

public struct TemplateServiceConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var redis: RedisSettings
    public var serviceKey: ServiceKeySettings
    public var cacheTTLSeconds: Int
    /// The sender addresses a template's `from_email` may name (`NOTIFY_MAIL_FROM_ALLOWED`).
    public var senders = SenderPolicy("")

    public init(listen: ListenSettings, postgres: PostgresSettings, redis: RedisSettings, serviceKey: ServiceKeySettings, cacheTTLSeconds: Int = 300)
    {
        self.listen = listen
        self.postgres = postgres
        self.redis = redis
        self.serviceKey = serviceKey
        self.cacheTTLSeconds = cacheTTLSeconds
    }

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        self.init(
            listen: ListenSettings(env, portKey: "NOTIFY_TEMPLATES_PORT", defaultPort: 8002, problems: &problems),
            postgres: PostgresSettings(env, problems: &problems),
            redis: RedisSettings(env, problems: &problems),
            serviceKey: ServiceKeySettings(env, problems: &problems),
            cacheTTLSeconds: env.int("NOTIFY_CACHE_TTL_SECONDS", default: 300, problems: &problems)
        )
        senders = SenderPolicy(env.string("NOTIFY_MAIL_FROM_ALLOWED", default: ""))
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The template service (port 8002): templates and their versions in the `templates` database.
public func buildTemplateService(_ configuration: TemplateServiceConfiguration, logger: Logger) -> some ApplicationProtocol {
    let postgres = Database(configuration.postgres, database: .templates, applicationName: "notify-templates", logger: logger)
    let redis = RedisClient(
        host: configuration.redis.host,
        port: configuration.redis.port,
        timeoutMilliseconds: configuration.redis.timeoutMilliseconds,
        username: configuration.redis.username,
        password: configuration.redis.password
    )
    let cache = RedisCache(redis: redis, prefix: configuration.redis.keyPrefix, ttlSeconds: configuration.cacheTTLSeconds, logger: logger)

    let router = serviceRouter(
        service: "templates",
        checks: [
            .timed("postgres") { try await postgres.check() },
            .timed("redis", critical: false) { try await redis.ping() },
            .breaker(cache.breaker),
        ],
        unavailable: Database.isUnavailable,
        document: APIDocument.templates
    )
    let api = router.group().add(middleware: ServiceKeyMiddleware(serviceKey: configuration.serviceKey.key))
    TemplateController(repository: TemplateRepository(client: postgres, logger: logger), cache: cache, senders: configuration.senders).register(
        on: api
    )

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-templates"),
        services: [postgres, cache.invalidationRetry],
        logger: logger
    )
}
