import AsyncHTTPClient
import Breakers
import Broker
import Credentials
import Directory
import Hummingbird
import Logging
import NotifyConfig
import NotifyHTTP
import PostgresNIO

public struct GatewayConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var maxAttempts: Int
    public var usersURL: String
    public var templatesURL: String
    public var serviceKey: ServiceKeySettings

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_GATEWAY_PORT", defaultPort: 8000, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        maxAttempts = env.int("NOTIFY_MAX_ATTEMPTS", default: 8, problems: &problems)
        usersURL = env.string("NOTIFY_USERS_URL", default: "http://127.0.0.1:8001")
        templatesURL = env.string("NOTIFY_TEMPLATES_URL", default: "http://127.0.0.1:8002")
        serviceKey = ServiceKeySettings(env, problems: &problems)
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The API gateway (port 8000): accepts notifications durably and answers status queries.
public func buildGateway(_ configuration: GatewayConfiguration, logger: Logger) -> some ApplicationProtocol {
    let postgres = PostgresClient(configuration: configuration.postgres.clientConfiguration(.notifications), backgroundLogger: logger)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let usersBreaker = CircuitBreaker(name: "users-service", logger: logger)
    let templatesBreaker = CircuitBreaker(name: "templates-service", logger: logger)
    let directory = PlatformDirectory(
        http: http,
        usersURL: configuration.usersURL,
        templatesURL: configuration.templatesURL,
        serviceKey: configuration.serviceKey.key,
        usersBreaker: usersBreaker,
        templatesBreaker: templatesBreaker,
        timeout: .seconds(2)
    )
    let router = Router(context: NotifyRequestContext.self)
    router.add(middleware: EnvelopeMiddleware())
    HealthRoutes(
        service: "gateway",
        checks: [.timed("postgres") { _ = try await postgres.query("SELECT 1", logger: logger) }, .breaker(usersBreaker), .breaker(templatesBreaker)]
    ).register(on: router)
    let api = router.group().add(
        middleware: APIKeyMiddleware(
            store: APIKeyStore(client: postgres, logger: logger),
            serviceKey: ServiceKeyMiddleware(serviceKey: configuration.serviceKey.key)
        )
    )
    NotificationController(
        repository: NotificationRepository(client: postgres, maxAttempts: configuration.maxAttempts, logger: logger),
        directory: directory
    ).register(on: api)

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-gateway"),
        services: [postgres, HTTPClientService(client: http)],
        logger: logger
    )
}
